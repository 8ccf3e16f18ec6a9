"""The single env: Gymnasium's and SB3's checkers, numerical match with Gymnasium, bad input."""

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import keel


def test_gymnasium_check_env(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite-bound and non-normalised-action advice
        check_env(env.unwrapped)


def test_sb3_check_env(env_id):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb3_check_env(gym.make(env_id).unwrapped, warn=False)


def test_time_limit_and_spec():
    env = gym.make("keel/CartPole-v1")
    assert env.spec.max_episode_steps == 500 and env.spec.reward_threshold == 475.0
    env = gym.make("keel/Pendulum-v1", max_episode_steps=5)
    env.reset(seed=0)
    flags = [env.step(np.zeros(1, np.float32))[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]


@pytest.mark.parametrize("gym_id", ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"])
def test_matches_gymnasium_from_the_same_state(gym_id):
    ours, theirs = gym.make(f"keel/{gym_id}"), gym.make(gym_id)
    rng = np.random.default_rng(0)
    for episode in range(3):
        _, _ = theirs.reset(seed=episode)
        state = np.array(theirs.unwrapped.state, dtype=np.float64)
        obs, _ = ours.reset(seed=episode, options={"state": state})
        theirs.action_space.seed(episode)
        for t in range(200):
            action = theirs.action_space.sample()
            o1, r1, te1, tr1, _ = ours.step(action)
            o2, r2, te2, tr2, _ = theirs.step(action)
            np.testing.assert_allclose(o1, o2, rtol=1e-6, atol=1e-6, err_msg=f"{gym_id} ep {episode} step {t}")
            assert r1 == pytest.approx(r2, rel=1e-9, abs=1e-12)
            assert (te1, tr1) == (te2, tr2)
            if te1 or tr1:
                break
    del rng


def test_fresh_arrays_every_step():
    env = gym.make("keel/CartPole-v1")
    obs0, _ = env.reset(seed=0)
    obs1 = env.step(0)[0]
    obs2 = env.step(1)[0]
    assert not np.shares_memory(obs0, obs1) and not np.shares_memory(obs1, obs2)


def test_reset_options_state_and_params():
    env = gym.make("keel/CartPole-v1")
    obs, _ = env.reset(options={"state": [0.1, 0.2, 0.03, 0.04]})
    np.testing.assert_allclose(obs, [0.1, 0.2, 0.03, 0.04], rtol=1e-7)
    np.testing.assert_allclose(env.unwrapped.state, [0.1, 0.2, 0.03, 0.04])
    obs, _ = env.reset(seed=1, options={"low": 0.3, "high": 0.4})
    assert np.all((obs >= 0.3) & (obs <= 0.4))
    with pytest.raises(keel.ConfigError, match="lowx"):
        env.reset(options={"lowx": 1.0})


def test_config_keywords():
    env = gym.make("keel/Pendulum-v1", g=9.81)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="gravityy"):
        gym.make("keel/CartPole-v1", gravityy=1.0)
    with pytest.raises(ValueError, match="tau"):
        gym.make("keel/CartPole-v1", tau=-0.1)
    with pytest.raises(keel.UnknownEnvError):
        keel.make("keel/NoSuchEnv-v0")
    with pytest.raises(gym.error.Error):
        gym.make("keel/NoSuchEnv-v0")


@pytest.mark.parametrize(
    "env_id, bad",
    [
        ("keel/CartPole-v1", 2),
        ("keel/CartPole-v1", -1),
        ("keel/CartPole-v1", 0.5),
        ("keel/CartPole-v1", np.array([0, 1])),
        ("keel/CartPole-v1", "left"),
        ("keel/Pendulum-v1", np.array([np.nan], np.float32)),
        ("keel/Pendulum-v1", np.array([1.0, 2.0], np.float32)),
        ("keel/Pendulum-v1", "x"),
    ],
)
def test_bad_actions_raise_and_env_survives(env_id, bad):
    env = keel.KeelEnv(env_id)
    twin = keel.KeelEnv(env_id)
    env.reset(seed=3)
    twin.reset(seed=3)
    with pytest.raises(ValueError):
        env.step(bad)
    good = env.action_space.sample()
    a, b = env.step(good), twin.step(good)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1:4] == b[1:4]


def test_step_before_reset():
    with pytest.raises(keel.ResetNeededError):
        keel.KeelEnv("keel/CartPole-v1").step(0)


def test_pickle_and_close_twice():
    env = gym.make("keel/Acrobot-v1")
    env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    o1, _ = env.reset(seed=5)
    o2, _ = clone.reset(seed=5)
    np.testing.assert_array_equal(o1, o2)
    env.close()
    env.close()
