"""The Atari games from Python (the `atari` feature, built by scripts/setup.sh): Gymnasium's API,
uint8 frames without a copy, Gymnasium's keyword names, clear errors."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import keel
from _require import skip_or_fail

if "keel/Pong-v5" not in keel.env_ids():
    skip_or_fail("KEEL_REQUIRE_ATARI", "Keel was built without the `atari` feature", module=True)


def test_every_game_is_registered():
    ids = [i for i in keel.env_ids() if i.startswith("keel/") and i.endswith("-v5")]
    assert len(ids) == 104 and "keel/Pong-v5" in ids and "keel/MontezumaRevenge-v5" in ids
    assert "keel/Pong-v5" in gym.registry


def test_pong_passes_check_env():
    env = gym.make("keel/Pong-v5")
    assert env.observation_space.shape == (210, 160, 3) and env.observation_space.dtype == np.uint8
    assert env.action_space.n == 6
    check_env(env.unwrapped, skip_render_check=True)
    check_env(gym.make("keel/Pong-v5", preset="gymnasium").unwrapped, skip_render_check=True)


def test_gymnasium_keywords_work_unchanged():
    env = gym.make("keel/Breakout-v5", preset="gymnasium", repeat_action_probability=0.0, noop_max=10,
                   frame_skip=4, screen_size=64, terminal_on_life_loss=True, grayscale_obs=True,
                   full_action_space=True, max_num_frames_per_episode=1000, mode=0, difficulty=0)
    obs, info = env.reset(seed=1)
    assert obs.shape == (4, 64, 64) and obs.dtype == np.uint8 and env.action_space.n == 18
    assert info["lives"] == 5
    obs, reward, terminated, truncated, info = env.step(1)
    assert set(info) >= {"lives", "raw_reward", "frame_number"}


def test_make_vec_gives_stacked_uint8_frames_without_a_copy():
    envs = gym.make_vec("keel/Pong-v5", num_envs=3, preset="gymnasium", copy=False)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (3, 4, 84, 84) and obs.dtype == np.uint8
    first = obs
    for _ in range(20):
        obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    assert obs.shape == (3, 4, 84, 84) and obs.dtype == np.uint8
    # copy=False hands out the engine's batch buffer itself, so the array is the same memory.
    assert np.shares_memory(obs, first)
    assert obs.max() > 0
    envs.close()


def test_cleanrl_preset_reports_whole_games():
    envs = gym.make_vec("keel/Breakout-v5", num_envs=2, preset="cleanrl")
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    returns, terminations = [], 0
    for _ in range(1500):
        _, reward, terminated, truncated, info = envs.step(rng.integers(0, 4, size=2))
        assert set(np.unique(reward)) <= {-1.0, 0.0, 1.0}
        terminations += int(terminated.sum())
        if "episode" in info:
            returns += list(info["episode"]["r"][info["_episode"]])
    assert returns and terminations > len(returns)
    envs.close()


def test_bad_input_raises_clear_errors():
    with pytest.raises(gym.error.Error):
        gym.make("keel/Pongg-v5")
    with pytest.raises(keel.UnknownEnvError):
        keel.make("keel/Pongg-v5")
    with pytest.raises(keel.ConfigError, match="noop_max"):
        gym.make("keel/Pong-v5", noop_max=3)
    with pytest.raises(keel.ConfigError, match="mode"):
        gym.make("keel/Pong-v5", mode=77)
    env = gym.make("keel/Pong-v5", preset="envpool")
    env.reset(seed=0)
    with pytest.raises((keel.ActionError, ValueError)):
        env.step(6)
    env.step(5)


def test_sb3_ppo_trains_on_the_cleanrl_preset():
    """SB3's PPO with its CnnPolicy (the Nature CNN) learns from the engine's byte frames for a few
    thousand steps: the frames reach it as (N, 4, 84, 84) uint8, channel-first, no wrapper."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.preprocessing import is_image_space

    import keel.sb3

    torch.set_num_threads(1)
    venv = keel.sb3.make_vec("keel/Breakout-v5", n_envs=4, seed=0, preset="cleanrl")
    assert venv.observation_space.shape == (4, 84, 84) and venv.observation_space.dtype == np.uint8
    assert is_image_space(venv.observation_space, check_channels=False)
    model = PPO("CnnPolicy", venv, n_steps=128, batch_size=256, n_epochs=1, seed=0, device="cpu")
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=2048)
    assert model.num_timesteps >= 2048
    moved = [not torch.equal(a, b.detach()) for a, b in zip(before, model.policy.parameters())]
    assert all(moved), "every layer of the CNN policy was updated"
    # Breakout's episodes end at each lost life (the cleanrl preset), so some ended and were logged.
    assert len(model.ep_info_buffer) > 0
    venv.close()


def test_copying_a_started_game_is_refused_not_reset():
    # The emulator has no snapshots: a copy without its state would be another game.
    import copy
    import pickle

    env = keel.KeelEnv("keel/Pong-v5")
    assert isinstance(copy.deepcopy(env), keel.KeelEnv)  # before the first reset: the arguments say all
    env.reset(seed=0)
    for copier in (copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError, match="cannot pickle or copy this keel/Pong-v5 env after its first reset"):
            copier(env)
    env.step(0)
    envs = keel.KeelVectorEnv("keel/Pong-v5", 2)
    envs.reset(seed=0)
    with pytest.raises(TypeError, match="do not support snapshots"):
        copy.deepcopy(envs)
