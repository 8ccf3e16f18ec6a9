"""Async (EnvPool-style) vector envs on CartPole: ``batch_size < num_envs``, ``send`` / ``recv``."""

import copy
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import keel


def scripted(i, t):
    """The action of env ``i`` at its ``t``-th step since the reset."""
    return (t * 7 + i * 3) % 5 % 2


def rows(obs, rew, term, trunc, info, k, env):
    done = info.get("_episode", np.zeros(len(rew), bool))
    episode = (float(info["episode"]["r"][k]), int(info["episode"]["l"][k])) if done[k] else None
    final = info["final_obs"][k].copy() if info.get("_final_obs", np.zeros(len(rew), bool))[k] else None
    return obs[k].tobytes(), float(rew[k]), bool(term[k]), bool(trunc[k]), episode, None if final is None else final.tobytes()


def sync_run(env_id, n, steps, mode, **kwargs):
    envs = keel.KeelVectorEnv(env_id, n, workers=0, autoreset_mode=mode, **kwargs)
    obs, info = envs.reset(seed=5)
    zeros = np.zeros(n)
    out = [[rows(obs, zeros, zeros.astype(bool), zeros.astype(bool), {}, i, i)] for i in range(n)]
    for t in range(steps):
        obs, rew, term, trunc, info = envs.step(np.array([scripted(i, t) for i in range(n)]))
        for i in range(n):
            out[i].append(rows(obs, rew, term, trunc, info, i, i))
    envs.close()
    return out


def async_run(env_id, n, b, steps, mode, workers, **kwargs):
    envs = keel.KeelAsyncVectorEnv(env_id, n, b, workers=workers, autoreset_mode=mode, **kwargs)
    envs.async_reset(seed=5)
    out = [[] for _ in range(n)]
    order = []
    while any(len(t) <= steps for t in out):
        obs, rew, term, trunc, info = envs.recv()
        ids = info["env_id"]
        assert obs.shape[0] == b and ids.dtype == np.int32
        for k, i in enumerate(ids):
            out[i].append(rows(obs, rew, term, trunc, info, k, i))
        envs.send(np.array([scripted(i, len(out[i]) - 1) for i in ids]), ids)
        order.append(ids.tolist())
    envs.close()
    return [t[: steps + 1] for t in out], order


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_async_trajectories_equal_sync_ones(mode):
    n, steps = 6, 150
    sync = sync_run("keel/CartPole-v1", n, steps, mode)
    assert any(r[4] is not None for traj in sync for r in traj), "episodes must end"
    for b in (1, 4):
        for workers in (0, 1, 2):
            got, _ = async_run("keel/CartPole-v1", n, b, steps, mode, workers)
            for i in range(n):
                assert got[i] == sync[i], f"batch_size={b} workers={workers} env {i}"


def test_serial_async_batches_come_in_send_order():
    first = async_run("keel/CartPole-v1", 5, 2, 30, AutoresetMode.NEXT_STEP, 0)
    assert first[1][:3] == [[0, 1], [2, 3], [4, 0]]
    assert async_run("keel/CartPole-v1", 5, 2, 30, AutoresetMode.NEXT_STEP, 0) == first


def test_make_vec_step_reset_and_views():
    # workers=0: batches in send order (with worker threads the first two to finish vary).
    envs = gym.make_vec("keel/CartPole-v1", num_envs=4, batch_size=2, copy=False, workers=0)
    assert isinstance(envs, keel.KeelAsyncVectorEnv) and envs.batch_size == 2
    obs, info = envs.reset(seed=0)  # async_reset + recv
    assert obs.shape == (2, 4) and not obs.flags.writeable and not obs.flags.owndata
    assert info["env_id"].tolist() == [0, 1] and envs.in_flight == 2
    obs, rew, term, trunc, info = envs.step(np.zeros(2, dtype=np.int64))  # to the last recv's envs
    assert obs.shape == (2, 4) and rew.shape == (2,) and sorted(info["env_id"].tolist()) == [2, 3]
    envs.close()
    copied = keel.make_vec("keel/CartPole-v1", num_envs=3, batch_size=3)
    obs, _ = copied.reset(seed=0)
    assert obs.flags.writeable  # a fresh array, not the view


def test_batch_size_makes_an_async_env_whose_spaces_match_recv():
    for envs in (keel.make_vec("keel/Pendulum-v1", num_envs=5, batch_size=2),
                 gym.make_vec("keel/Pendulum-v1", num_envs=5, batch_size=2)):
        assert isinstance(envs, keel.KeelAsyncVectorEnv)
        assert not isinstance(envs, gym.vector.VectorEnv)
        assert envs.num_envs == 5 and envs.batch_size == 2
        assert envs.observation_space.shape == (2, 3) and envs.action_space.shape == (2, 1)
        assert envs.single_observation_space.shape == (3,) and envs.unwrapped is envs
        obs, info = envs.reset(seed=0)
        assert obs in envs.observation_space and info["env_id"].shape == (2,)
        for _ in range(5):
            obs, rew, term, trunc, info = envs.step(envs.action_space.sample())
            assert obs in envs.observation_space and rew.shape == (2,)
            assert info["env_id"].dtype == np.int32 and len(set(info["env_id"].tolist())) == 2
        envs.close()
        envs.close()
    assert envs.spec.id == "keel/Pendulum-v1"
    assert isinstance(keel.make_vec("keel/CartPole-v1", num_envs=4), keel.KeelVectorEnv)
    with pytest.raises(keel.ConfigError, match="KeelAsyncVectorEnv"):
        keel.KeelVectorEnv("keel/CartPole-v1", 4, batch_size=2)


@pytest.mark.parametrize("workers", [0, 2])
def test_copy_false_views_never_change_after_later_recvs(workers):
    # Each recv's view is its own block: no later recv, send or reset writes it while it lives.
    envs = keel.KeelAsyncVectorEnv("keel/CartPole-v1", 4, 2, workers=workers, copy=False)
    obs, info = envs.reset(seed=0)
    held = [(obs, obs.copy(), info["env_id"].copy())]
    for t in range(40):
        obs, _, _, _, info = envs.step(np.array([(t + k) % 2 for k in range(2)]))
        if t % 10 == 0:
            held.append((obs, obs.copy(), info["env_id"].copy()))
    envs.async_reset(seed=1)
    envs.recv()
    for view, at_recv, _ in held:
        assert not view.flags.writeable and not view.flags.owndata
        np.testing.assert_array_equal(view, at_recv)
    # Views let go of are recycled: a loop that keeps none reuses a few blocks, no more.
    del held, view, obs
    addresses = set()
    for t in range(60):
        obs, *_ = envs.step(np.zeros(2, np.int64))
        addresses.add(obs.__array_interface__["data"][0])
    assert len(addresses) <= 6, len(addresses)
    envs.close()


def test_bad_async_input_raises_clear_errors_and_keeps_the_env_usable():
    with pytest.raises(keel.ConfigError, match="batch_size"):
        keel.make_vec("keel/CartPole-v1", num_envs=4, batch_size=0)
    with pytest.raises(keel.ConfigError, match="batch_size"):
        keel.make_vec("keel/CartPole-v1", num_envs=4, batch_size=5)
    with pytest.raises(keel.ConfigError, match="autoreset_mode"):
        keel.make_vec("keel/CartPole-v1", num_envs=4, batch_size=2, autoreset_mode=AutoresetMode.DISABLED)
    for workers in (0, 2):
        envs = keel.make_vec("keel/CartPole-v1", num_envs=4, batch_size=2, workers=workers)
        with pytest.raises(keel.ResetNeededError, match=r"send\(\) before the first reset: call reset\(\) or async_reset"):
            envs.send(np.zeros(2, dtype=np.int64), [0, 1])
        with pytest.raises(keel.ResetNeededError, match=r"recv\(\) before the first reset"):
            envs.recv()
        with pytest.raises(keel.ResetNeededError, match=r"before the first reset"):
            envs.step(np.zeros(2, dtype=np.int64), [0, 1])
        with pytest.raises(keel.ActionError, match="no.*recv|there is none"):
            envs.async_reset(seed=0)
            envs.send(np.zeros(2, dtype=np.int64))
        with pytest.raises(keel.ActionError, match="already in flight"):
            envs.send(np.zeros(1, dtype=np.int64), [3])
        ids = envs.recv()[4]["env_id"]
        cases = [
            (np.zeros(2, dtype=np.int64), [ids[0], 4], "out of range"),
            (np.zeros(2, dtype=np.int64), [ids[0], ids[0]], "twice"),
            (np.zeros(2, dtype=np.int64), [ids[0], -1], "negative"),
            (np.zeros(2, dtype=np.int64), "01", "integer ids"),
            (np.zeros(3, dtype=np.int64), ids, r"shape \(3,\)"),
            (np.array([0, 2]), ids, "action"),
            (np.array([0.0, 1.0]), ids, "integer action"),
        ]
        for actions, env_id, message in cases:
            with pytest.raises(ValueError, match=message):
                envs.send(actions, env_id)
        assert envs.in_flight == 2, "a refused send changes nothing"
        envs.recv()
        with pytest.raises(keel.ActionError, match="recv needs batch_size = 2 envs in flight, 0 are"):
            envs.recv()
        for sync_only in ("step_into", "state", "set_params"):
            assert not hasattr(envs, sync_only)
        with pytest.raises(keel.ConfigError, match="reset_mask"):
            envs.async_reset(options={"reset_mask": [True] * 4})
        envs.send(np.ones(2, dtype=np.int64), ids)
        obs, *_ = envs.recv()
        assert obs.shape == (2, 4)
        envs.close()
        with pytest.raises(keel.ClosedError):
            envs.recv()
    sync = keel.make_vec("keel/CartPole-v1", num_envs=2)
    assert not hasattr(sync, "recv") and not hasattr(sync, "send")


def test_pickle_and_deepcopy_before_the_first_reset_only():
    envs = keel.make_vec("keel/CartPole-v1", num_envs=4, batch_size=2, workers=0)  # batches in send order
    for clone in (pickle.loads(pickle.dumps(envs)), copy.deepcopy(envs)):
        assert isinstance(clone, keel.KeelAsyncVectorEnv) and clone.batch_size == 2
        fresh = keel.make_vec("keel/CartPole-v1", num_envs=4, batch_size=2, workers=0)
        np.testing.assert_array_equal(clone.reset(seed=3)[0], fresh.reset(seed=3)[0])
    envs.reset(seed=0)
    with pytest.raises(TypeError, match="after its first reset"):
        copy.deepcopy(envs)
    with pytest.raises(TypeError, match="after its first reset"):
        pickle.dumps(envs)
    envs.step(np.zeros(2, np.int64))  # still usable


def test_a_failing_env_poisons_until_async_reset():
    keel.register_test_envs()
    for workers in (0, 2):
        envs = keel.KeelAsyncVectorEnv("keel-test/BytePattern-v0", 4, 2, workers=workers, panic_on=3)
        envs.async_reset(seed=0)
        ids = envs.recv()[4]["env_id"]
        envs.send(np.array([0, 3]), ids)
        with pytest.raises(keel.PoisonedError, match=f"sub-env {ids[1]}"):
            envs.recv()
            envs.recv()
        with pytest.raises(keel.PoisonedError, match="unusable until reset"):
            envs.send(np.array([0]), [ids[0]])
        obs, info = envs.reset(seed=1)
        assert obs.dtype == np.uint8 and obs.shape == (2, 2, 3, 4)
        assert info["step"].shape == (2,)
