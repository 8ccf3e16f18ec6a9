"""keel/HumanoidTrack-v1 from Python: Gymnasium's checker, reward terms in info, rendering, bad input."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import keel
from _require import skip_or_fail

ID = "keel/HumanoidTrack-v1"
TERMS = ["reward_pose", "reward_velocity", "reward_end_effector", "reward_root", "reward_com"]


def make(**kwargs):
    try:
        return gym.make(ID, **kwargs)
    except keel.DataMissingError as e:
        skip_or_fail("KEEL_REQUIRE_HUMANOID_DATA", str(e))


def test_check_env_passes_on_walk():
    env = make(clip="walk")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite observation bounds
        check_env(env.unwrapped)


def test_check_env_passes_with_rgb_array_rendering():
    env = make(clip="walk", render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 8


def test_info_holds_every_reward_term_and_they_are_1_on_the_reference():
    env = make(clip="run")
    _, info = env.reset(seed=1, options={"start_time": 0.25})
    for term in TERMS:
        assert info[term] == pytest.approx(1.0, abs=1e-5), term
    assert info["tracking_error"] < 1e-5 and info["clip_time"] == 0.25
    _, reward, terminated, truncated, info = env.step(np.zeros(28, dtype=np.float32))
    assert 0.0 <= reward <= 1.0 and set(TERMS) <= set(info)


def test_bad_input_names_the_value_and_the_env_stays_usable():
    with pytest.raises(keel.ConfigError, match="moonwalk"):
        make(clip="moonwalk")
    env = make(clip="walk")
    env.reset(seed=2)
    with pytest.raises(keel.ConfigError, match="moonwalk"):
        env.reset(options={"clip": "moonwalk"})
    with pytest.raises(keel.ActionError):
        env.step(np.full(28, np.nan, dtype=np.float32))
    with pytest.raises(keel.KeelError, match="expected 78 values.*got 43"):
        env.reset(options={"state": [0.0] * 43})
    state = env.unwrapped.state
    state[2] = np.nan  # the root's height
    with pytest.raises(keel.KeelError, match=r"state\[2\] = nan"):
        env.reset(options={"state": state.tolist()})
    env.step(np.zeros(28, dtype=np.float32))


def test_a_vector_of_humanoids_steps_on_the_rust_engine():
    try:
        envs = gym.make_vec(ID, num_envs=3, clip="walk")
    except keel.DataMissingError as e:
        skip_or_fail("KEEL_REQUIRE_HUMANOID_DATA", str(e))
    obs, info = envs.reset(seed=3)
    assert obs.shape == (3, 227)
    obs, reward, terminated, truncated, info = envs.step(np.zeros((3, 28), dtype=np.float32))
    assert reward.shape == (3,) and info["reward_pose"].shape == (3,)


def test_history_observation_holds_the_earlier_frames_and_passes_check_env():
    """`history_len=4, history_stride=3`: the four frames 12, 9, 6 and 3 steps back (the first
    frame repeated before the episode had them), oldest first, after the 227 numbers of the
    current state and phase."""
    env = make(clip="walk", history_len=4, history_stride=3)
    frame = 226
    assert env.observation_space.shape == (227 + 4 * frame,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    seen = [obs[:frame].copy()]
    for t in range(1, 10):
        obs, _, terminated, truncated, _ = env.step(0.1 * env.action_space.sample())
        assert not (terminated or truncated)
        for j in range(4):
            back = max(t - (4 - j) * 3, 0)
            np.testing.assert_array_equal(obs[227 + j * frame : 227 + (j + 1) * frame], seen[back], err_msg=f"step {t}, slot {j}")
        seen.append(obs[:frame].copy())
    with pytest.raises(keel.ConfigError, match="history_stride"):
        gym.make(ID, history_stride=0)
