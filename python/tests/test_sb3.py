"""Stable-Baselines3 on the Rust engine: same-step conventions and a short PPO run that learns."""

import numpy as np
import pytest
import stable_baselines3 as sb3  # installed by the setup: a missing SB3 is a failure, not a skip

import keel
import keel.sb3


def test_same_step_infos():
    env = keel.sb3.make_vec("keel/CartPole-v1", n_envs=2, seed=0, max_episode_steps=4)
    obs = env.reset()
    assert obs.shape == (2, 4)
    for t in range(4):
        obs, rewards, dones, infos = env.step(np.array([0, 1]))
    assert dones.all()
    for info in infos:
        assert info["terminal_observation"].shape == (4,)
        assert isinstance(info["TimeLimit.truncated"], bool)
        assert info["episode"]["l"] == 4 and info["episode"]["r"] == 4.0
    assert rewards.dtype == np.float32


def test_seeding_matches_gymnasium_convention():
    a = keel.sb3.make_vec("keel/CartPole-v1", n_envs=3, seed=7).reset()
    b = keel.sb3.make_vec("keel/CartPole-v1", n_envs=3, seed=7).reset()
    np.testing.assert_array_equal(a, b)
    import gymnasium as gym

    np.testing.assert_array_equal(a[2], gym.make("keel/CartPole-v1").reset(seed=9)[0])


def test_ppo_trains_and_improves():
    import torch

    torch.set_num_threads(1)
    env = keel.sb3.make_vec("keel/CartPole-v1", n_envs=8, seed=0)
    model = sb3.PPO("MlpPolicy", env, n_steps=128, seed=0, device="cpu", verbose=0)
    model.learn(4096)
    early = np.mean([e["r"] for e in model.ep_info_buffer])
    model.learn(12288, reset_num_timesteps=False)
    late = np.mean([e["r"] for e in list(model.ep_info_buffer)[-20:]])
    assert late > early + 30, (early, late)


def test_indices_and_per_env_options():
    env = keel.sb3.make_vec("keel/CartPole-v1", n_envs=3, seed=0)
    starts = [{"state": [0.01 * i, 0.0, 0.0, 0.0]} for i in range(3)]
    env.set_options(starts)
    obs = env.reset()
    np.testing.assert_allclose(obs, np.array([s["state"] for s in starts], np.float32))
    env.set_attr("high", 0.3, indices=[2])
    env.env_method("set_params", indices=[0], low=-0.01, high=0.01)
    assert env.get_attr("high") == [0.01, 0.05, 0.3]
    assert env.env_method("params", indices=1)[0]["high"] == 0.05
    with pytest.raises(keel.ConfigError, match="gravity"):
        env.set_attr("gravity", 1000.0)
    with pytest.raises(IndexError):
        env.get_attr("high", indices=[10])


def test_extras_reach_sb3_infos():
    env = keel.sb3.make_vec("keel/Burgers-v0", n_envs=2, seed=0, n_state=64, max_episode_steps=3)
    env.reset()
    for _ in range(3):
        obs, rewards, dones, infos = env.step(np.zeros((2, 8)))
    assert obs.dtype == np.float64 and dones.all()
    for info in infos:
        assert info["state_cost"] > 0.0 and info["action_cost"] == 0.0  # zero actions cost nothing
        assert {"state_cost", "action_cost", "state_norm", "terminal_observation"} <= set(info)
