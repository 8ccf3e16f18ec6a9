"""The vector env: Gymnasium's VectorEnv contract on the Rust engine."""

import pickle
import threading

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
    assert infos == {}
    for actions in random_actions(envs, 20):
        obs, rewards, terminations, truncations, infos = envs.step(actions)
        assert obs in envs.observation_space
        assert rewards.dtype == np.float64 and terminations.dtype == np.bool_ and truncations.dtype == np.bool_


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
    envs.reset(seed=0)
    returns, ended_at = np.zeros(2), None
    for t in range(5):
        _, rewards, term, trunc, infos = envs.step(np.array([0, 1]))
        returns += rewards
        if "episode" in infos:
            ended_at = t
            assert infos["_episode"].dtype == np.bool_
            for i in np.flatnonzero(infos["_episode"]):
                assert infos["episode"]["r"][i] == returns[i]
                assert infos["episode"]["l"][i] == t + 1
            break
    assert ended_at is not None
    obs, rewards, term, trunc, infos = envs.step(np.array([0, 1]))
    done_before = np.flatnonzero(infos.get("_episode", np.zeros(2, bool)) == False)  # noqa: E712
    assert np.all(rewards[done_before] >= 0.0)


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


def test_observations_are_handed_over_not_copied():
    envs = gym.make_vec("keel/Pendulum-v1", num_envs=8)
    envs.reset(seed=0)
    a = envs.step(np.zeros((8, 1), np.float32))[0]
    b = envs.step(np.zeros((8, 1), np.float32))[0]
    assert not a.flags.owndata and a.base is not None  # a view of the Rust buffer
    assert not np.shares_memory(a, b)


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
    envs = keel.KeelVectorEnv("keel/Acrobot-v1", 256, workers=1)
    envs.reset(seed=0)
    actions = np.ones(256, np.int64)
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(1)

    thread = threading.Thread(target=count)
    thread.start()
    for _ in range(50):
        envs.step(actions)
    stop.set()
    thread.join()
    assert len(ticks) > 0


def test_pickle_and_close_twice():
    envs = gym.make_vec("keel/MountainCar-v0", num_envs=3)
    clone = pickle.loads(pickle.dumps(envs))
    np.testing.assert_array_equal(envs.reset(seed=1)[0], clone.reset(seed=1)[0])
    envs.close()
    envs.close()
