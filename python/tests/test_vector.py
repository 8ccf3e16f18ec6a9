"""The vector env: Gymnasium's VectorEnv contract on the Rust engine."""

import copy
import pickle
import sys
import threading
import time

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import keel


def random_actions(envs, steps, seed=0):
    envs.action_space.seed(seed)
    return [envs.action_space.sample() for _ in range(steps)]


def test_spaces_and_metadata(env_id):
    envs = gym.make_vec(env_id, num_envs=3)
    assert isinstance(envs, gym.vector.VectorEnv) and isinstance(envs, keel.KeelVectorEnv)
    assert envs.num_envs == 3
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    single = gym.make(env_id)
    assert envs.single_observation_space == single.observation_space
    assert envs.single_action_space == single.action_space
    obs, infos = envs.reset(seed=1)
    assert obs.shape == envs.observation_space.shape and obs.dtype == envs.observation_space.dtype
    extras = envs.extras
    assert set(infos) == set(extras) | {f"_{e}" for e in extras}
    for actions in random_actions(envs, 20):
        obs, rewards, terminations, truncations, infos = envs.step(actions)
        assert obs in envs.observation_space
        assert obs.shape == envs.observation_space.shape and obs.dtype == envs.observation_space.dtype
        assert rewards.dtype == np.float64 and terminations.dtype == np.bool_ and truncations.dtype == np.bool_
        for e in extras:
            assert infos[e].shape == (3,) and infos[f"_{e}"].all()


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_sub_env_i_is_single_env_seeded_seed_plus_i(workers):
    envs = keel.KeelVectorEnv("keel/CartPole-v1", 4, workers=workers, max_episode_steps=500)
    obs, _ = envs.reset(seed=10)
    singles = [gym.make("keel/CartPole-v1") for _ in range(4)]
    for i, env in enumerate(singles):
        np.testing.assert_array_equal(env.reset(seed=10 + i)[0], obs[i])
    needs_reset = [False] * 4
    for actions in random_actions(envs, 100):
        obs, rewards, term, trunc, _ = envs.step(actions)
        for i, env in enumerate(singles):
            if needs_reset[i]:
                o, r, te, tr = env.reset()[0], 0.0, False, False
            else:
                o, r, te, tr, _ = env.step(actions[i])
            needs_reset[i] = te or tr
            np.testing.assert_array_equal(o, obs[i])
            assert (r, te, tr) == (rewards[i], term[i], trunc[i])


def test_episode_statistics_and_next_step_autoreset():
    envs = gym.make_vec("keel/CartPole-v1", num_envs=2, max_episode_steps=5)
    singles = [gym.make("keel/CartPole-v1", max_episode_steps=5) for _ in range(2)]
    envs.reset(seed=0)
    for i, env in enumerate(singles):
        env.reset(seed=i)
    returns = np.zeros(2)
    for t in range(5):
        _, rewards, term, trunc, infos = envs.step(np.array([0, 1]))
        for i, env in enumerate(singles):
            env.step(i)
        returns += rewards
    # The 5th step ends both episodes (time limit): statistics are reported at that step.
    assert trunc.all() and infos["_episode"].all() and infos["_episode"].dtype == np.bool_
    np.testing.assert_array_equal(infos["episode"]["r"], returns)
    np.testing.assert_array_equal(infos["episode"]["l"], [5, 5])
    # NextStep: the next step ignores the actions, resets, and returns the new start with
    # reward 0 and no flags; the starts continue each env's random stream.
    obs, rewards, term, trunc, infos = envs.step(np.array([1, 1]))
    np.testing.assert_array_equal(rewards, [0.0, 0.0])
    assert not term.any() and not trunc.any() and "episode" not in infos
    for i, env in enumerate(singles):
        np.testing.assert_array_equal(obs[i], env.reset()[0])
    # Then normal steps again.
    _, rewards, _, _, _ = envs.step(np.array([1, 1]))
    np.testing.assert_array_equal(rewards, [1.0, 1.0])


def test_same_step_final_obs():
    envs = gym.make_vec("keel/CartPole-v1", num_envs=2, max_episode_steps=3, autoreset_mode=AutoresetMode.SAME_STEP)
    nxt = gym.make_vec("keel/CartPole-v1", num_envs=2, max_episode_steps=3)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    envs.reset(seed=4)
    nxt.reset(seed=4)
    for t in range(3):
        obs, _, _, trunc, infos = envs.step(np.array([1, 0]))
        ref = nxt.step(np.array([1, 0]))[0]
    assert trunc.all() and infos["_final_obs"].all()
    np.testing.assert_array_equal(np.stack(infos["final_obs"]), ref)
    np.testing.assert_array_equal(obs, nxt.step(np.array([1, 0]))[0])


def test_disabled_needs_masked_reset():
    envs = gym.make_vec("keel/CartPole-v1", num_envs=2, max_episode_steps=2, autoreset_mode="Disabled")
    envs.reset(seed=0)
    envs.step(np.array([0, 0]))
    _, _, _, trunc, _ = envs.step(np.array([0, 0]))
    assert trunc.all()
    with pytest.raises(keel.ResetNeededError):
        envs.step(np.array([0, 0]))
    obs, _ = envs.reset(options={"reset_mask": np.array([True, True])})
    envs.step(np.array([0, 0]))


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_masked_reset_keeps_the_other_rows(workers):
    envs = keel.KeelVectorEnv("keel/CartPole-v1", 4, workers=workers)
    envs.reset(seed=0)
    before = envs.step(np.array([0, 1, 0, 1]))[0].copy()
    obs, _ = envs.reset(options={"reset_mask": [True, False, False, False]})
    np.testing.assert_array_equal(obs[1:], before[1:])
    assert not np.array_equal(obs[0], before[0]) and np.abs(obs[0]).max() <= 0.05


def test_uint8_observations_reach_numpy_without_a_copy():
    keel.register_test_envs()
    envs = keel.KeelVectorEnv("keel-test/BytePattern-v0", 4, copy=False, workers=2)
    single = gym.make("keel-test/BytePattern-v0")
    assert envs.single_observation_space.dtype == np.uint8 and envs.single_observation_space.shape == (2, 3, 4)
    obs, infos = envs.reset(seed=3)
    assert obs.dtype == np.uint8 and obs.shape == (4, 2, 3, 4)
    address = obs.__array_interface__["data"][0]
    np.testing.assert_array_equal(obs[2], single.reset(seed=5)[0])
    for t in range(12):
        actions = np.array([t % 4, 1, 2, 3])
        obs, rewards, term, trunc, infos = envs.step(actions)
        # The engine's own buffer: same address every step, read-only, kept alive by the env.
        assert obs.__array_interface__["data"][0] == address
        assert not obs.flags.writeable and not obs.flags.owndata and obs.base is not None
        assert obs.dtype == np.uint8 and obs.shape == (4, 2, 3, 4)
        if t < 10:
            np.testing.assert_array_equal(obs[2], single.step(2)[0])
            np.testing.assert_array_equal(infos["step"], [t + 1] * 4)
    with pytest.raises(ValueError):
        obs[0, 0, 0, 0] = 1
    # copy=True (the default) hands out fresh arrays instead.
    copied = keel.KeelVectorEnv("keel-test/BytePattern-v0", 4)
    a = copied.reset(seed=3)[0]
    b = copied.step(np.zeros(4, np.int64))[0]
    assert a.flags.writeable and b.flags.writeable and not np.shares_memory(a, b)


def test_per_env_options_and_params():
    envs = keel.KeelVectorEnv("keel/CartPole-v1", 3)
    starts = [[0.01 * i, 0.0, 0.0, 0.0] for i in range(3)]
    obs, _ = envs.reset(seed=0, options=[{"state": s} for s in starts])
    np.testing.assert_allclose(obs, np.array(starts, np.float32))
    envs.set_params(indices=[1], high=0.2, low=-0.2)
    assert envs.params(1)["high"] == 0.2 and envs.params(0)["high"] == 0.05
    with pytest.raises(ValueError):
        envs.reset(options=[{"state": starts[0]}] * 2)
    with pytest.raises(IndexError, match="out of range"):
        envs.set_params(indices=[5], high=0.2)


def test_extras_and_float64_actions_of_controlgym_envs():
    envs = keel.KeelVectorEnv("keel/Burgers-v0", 2, n_state=64)
    single = gym.make("keel/Burgers-v0", n_state=64)
    assert envs.single_action_space.dtype == np.float64 and envs.single_observation_space.dtype == np.float64
    envs.reset(seed=0)
    single.reset(seed=0)
    action = np.full((2, 8), 0.1 + 1e-12)
    obs, rewards, _, _, infos = envs.step(action)
    o, r, _, _, info = single.step(action[0])
    np.testing.assert_array_equal(obs[0], o)
    assert rewards[0] == r and infos["state_norm"][0] == info["state_norm"]
    assert info["state_cost"] + info["action_cost"] == pytest.approx(-r, rel=1e-12)
    # float64 actions are not rounded to float32 on the way in.
    rounded = gym.make("keel/Burgers-v0", n_state=64)
    rounded.reset(seed=0)
    assert rounded.step(action[0].astype(np.float32))[1] != r


def test_a_failing_sub_env_poisons_until_reset():
    keel.register_test_envs()
    envs = keel.KeelVectorEnv("keel-test/BytePattern-v0", 3, panic_on=3)
    envs.reset(seed=0)
    with pytest.raises(keel.PoisonedError, match="sub-env 1"):
        envs.step(np.array([0, 3, 0]))
    with pytest.raises(keel.PoisonedError, match="until reset"):
        envs.step(np.array([0, 0, 0]))
    envs.reset(seed=1)
    envs.step(np.array([0, 0, 0]))


def test_step_into_caller_buffers():
    envs = keel.KeelVectorEnv("keel/CartPole-v1", 4)
    ref = keel.KeelVectorEnv("keel/CartPole-v1", 4)
    envs.reset(seed=2)
    ref.reset(seed=2)
    obs, rew = np.empty((4, 4), np.float32), np.empty(4)
    term, trunc = np.empty(4, bool), np.empty(4, bool)
    for actions in random_actions(envs, 30):
        infos = envs.step_into(actions, obs, rew, term, trunc)
        o, r, te, tr, ref_infos = ref.step(actions)
        np.testing.assert_array_equal(obs, o)
        np.testing.assert_array_equal(rew, r)
        assert set(infos) == set(ref_infos)
    with pytest.raises(ValueError, match="obs"):
        envs.step_into(np.zeros(4, np.int64), np.empty((4, 3), np.float32), rew, term, trunc)
    with pytest.raises(ValueError, match="dtype float32"):
        envs.step_into(np.zeros(4, np.int64), np.empty((4, 4), np.float64), rew, term, trunc)


def test_step_into_checks_every_buffer_before_stepping():
    # Three envs, so the transposed observation buffer (4, 3) has the right size but not the
    # right shape.
    envs = keel.KeelVectorEnv("keel/CartPole-v1", 3)
    fresh = keel.KeelVectorEnv("keel/CartPole-v1", 3)
    envs.reset(seed=7)
    fresh.reset(seed=7)
    obs, rew = np.empty((3, 4), np.float32), np.empty(3)
    term, trunc = np.empty(3, bool), np.empty(3, bool)
    read_only = np.empty((3, 4), np.float32)
    read_only.flags.writeable = False
    actions = np.array([1, 0, 1])
    bad = [
        ((np.empty((4, 3), np.float32), rew, term, trunc), r"`obs` has shape \(4, 3\) where \(3, 4\) is needed"),
        ((np.empty(12, np.float32), rew, term, trunc), r"`obs` has shape \(12,\)"),
        ((np.empty((3, 4), np.float64), rew, term, trunc), "`obs` must be of dtype float32"),
        ((np.empty((4, 3), np.float32).T, rew, term, trunc), "`obs` must be C-contiguous"),
        ((read_only, rew, term, trunc), "`obs` is read-only"),
        ((obs.tolist(), rew, term, trunc), "`obs` must be a numpy array"),
        ((obs, np.empty(3, np.float32), term, trunc), "`rewards` must be of dtype float64"),
        ((obs, np.empty(4), term, trunc), r"`rewards` has shape \(4,\)"),
        ((obs, rew, term, term), "`truncations` shares memory with `terminations`"),
        ((obs, rew, trunc[:], trunc), "`truncations` shares memory with `terminations`"),
        ((obs, rew, term, np.empty(3, np.int8)), "`truncations` must be of dtype bool"),
    ]
    for buffers, message in bad:
        with pytest.raises(keel.ActionError, match=message):
            envs.step_into(actions, *buffers)
    # Nothing stepped: the same step gives what a fresh env's first step gives.
    infos = envs.step_into(actions, obs, rew, term, trunc)
    o, r, te, tr, _ = fresh.step(actions)
    np.testing.assert_array_equal(obs, o)
    np.testing.assert_array_equal(rew, r)
    np.testing.assert_array_equal(term, te)
    np.testing.assert_array_equal(trunc, tr)
    assert "_episode" not in infos


def test_copy_false_views_are_rewritten_by_the_next_step_as_documented():
    # KeelVectorEnv(copy=False): one buffer, rewritten in place by every step and reset.
    envs = keel.KeelVectorEnv("keel/CartPole-v1", 3, copy=False)
    first, _ = envs.reset(seed=0)
    kept = first.copy()
    second = envs.step(np.array([1, 1, 1]))[0]
    assert np.shares_memory(first, second)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, kept), "the held view shows the new step, as the docs say"


def test_pickle_and_deepcopy_carry_the_state_mid_episode():
    for make in (lambda: gym.make("keel/CartPole-v1"), lambda: keel.KeelEnv("keel/Pendulum-v1")):
        env = make()
        env.reset(seed=3)
        env.action_space.seed(0)
        actions = [env.action_space.sample() for _ in range(12)]
        for a in actions[:5]:
            env.step(a)
        # The copies continue from the original's state: step all three in lockstep.
        twins = [copy.deepcopy(env), pickle.loads(pickle.dumps(env))]
        for a in actions[5:]:
            o, r, te, tr, _ = env.step(a)
            for twin in twins:
                to, tr_, tte, ttr, _ = twin.step(a)
                np.testing.assert_array_equal(to, o)
                assert (tr_, tte, ttr) == (r, te, tr)
            if te or tr:
                break
    envs = keel.KeelVectorEnv("keel/CartPole-v1", 3, max_episode_steps=8)
    envs.reset(seed=1)
    for actions in random_actions(envs, 6):
        envs.step(actions)
    twins = [copy.deepcopy(envs), pickle.loads(pickle.dumps(envs))]
    for actions in random_actions(envs, 10, seed=4):  # through the time limit and the autoreset
        want = envs.step(actions)
        for twin in twins:
            got = twin.step(actions)
            for a, b in zip(want[:4], got[:4]):
                np.testing.assert_array_equal(a, b)
            assert got[4].get("_episode", np.zeros(3)).tolist() == want[4].get("_episode", np.zeros(3)).tolist()


def test_pickle_before_reset_and_after_close():
    envs = keel.KeelVectorEnv("keel/CartPole-v1", 2)
    clone = pickle.loads(pickle.dumps(envs))
    np.testing.assert_array_equal(envs.reset(seed=1)[0], clone.reset(seed=1)[0])
    envs.close()
    closed = pickle.loads(pickle.dumps(envs))
    with pytest.raises(keel.ClosedError):
        closed.step(np.zeros(2, np.int64))


def test_bad_batches_raise_and_env_survives():
    envs = keel.KeelVectorEnv("keel/CartPole-v1", 3)
    twin = keel.KeelVectorEnv("keel/CartPole-v1", 3)
    envs.reset(seed=0)
    twin.reset(seed=0)
    for bad in [np.array([0, 1]), np.array([0, 1, 2]), np.array([0.5, 0.0, 1.0]), "x", np.zeros((3, 2), np.int64)]:
        with pytest.raises(ValueError):
            envs.step(bad)
    pend = keel.KeelVectorEnv("keel/Pendulum-v1", 2)
    pend.reset(seed=0)
    with pytest.raises(ValueError, match="sub-env 1"):
        pend.step(np.array([[0.0], [np.nan]], np.float32))
    a = envs.step(np.array([1, 0, 1]))
    b = twin.step(np.array([1, 0, 1]))
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError):
        gym.make_vec("keel/CartPole-v1", num_envs=2, masscart=-1.0)
    with pytest.raises(ValueError):
        keel.KeelVectorEnv("keel/CartPole-v1", 0)


def test_gil_is_released_while_stepping():
    # Another Python thread can only run while a vector step is in progress if the step released
    # the GIL. With a switch interval of 100 s the interpreter never preempts the stepping thread
    # between timing and stepping; the counting thread gives the GIL back after every tick. So
    # ticks inside a step happen if and only if the step released the GIL.
    envs = keel.KeelVectorEnv("keel/KuramotoSivashinsky-v0", 8, workers=1)
    envs.reset(seed=0)
    actions = np.zeros((8, 8))
    ticks, intervals = [], []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0)

    previous = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    try:
        thread = threading.Thread(target=count)
        thread.start()
        for _ in range(20):
            start = time.perf_counter()
            envs.step(actions)
            intervals.append((start, time.perf_counter()))
        stop.set()
        thread.join()
    finally:
        sys.setswitchinterval(previous)
    ticks = np.array(ticks)
    inside = sum(int(((ticks > a) & (ticks < b)).sum()) for a, b in intervals)
    assert inside > 20, f"{inside} ticks while the engine stepped: the GIL was held"


def test_pickle_and_close_twice():
    envs = gym.make_vec("keel/MountainCar-v0", num_envs=3)
    clone = pickle.loads(pickle.dumps(envs))
    np.testing.assert_array_equal(envs.reset(seed=1)[0], clone.reset(seed=1)[0])
    envs.close()
    envs.close()


def test_scalar_box_bounds_become_gymnasium_arrays():
    # The core sends an image space's bounds as one value each (not one per pixel); the
    # Gymnasium space has them per element, as Box(0, 255, shape) does.
    keel.register_test_envs()
    env = gym.make("keel-test/BytePattern-v0", shape=[4, 8, 8])
    space = env.observation_space
    assert space.shape == (4, 8, 8) and space.dtype == np.uint8
    assert space.low.shape == (4, 8, 8) and (space.low == 0).all() and (space.high == 255).all()
    assert space == gym.spaces.Box(0, 255, (4, 8, 8), np.uint8)
    assert space.contains(env.reset(seed=1)[0])
    env.close()
