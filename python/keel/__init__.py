"""Keel from Python: Rust environments behind Gymnasium's API.

``import keel`` registers every Keel env with Gymnasium under its ``keel/...`` id::

    import gymnasium as gym
    import keel

    env = gym.make("keel/CartPole-v1")
    envs = gym.make_vec("keel/Pendulum-v1", num_envs=256)

and ``keel.sb3.make_vec`` gives a Stable-Baselines3 ``VecEnv`` on the same engine.
"""

from __future__ import annotations

import json

import gymnasium

from keel import _core
from keel._core import ActionError, ConfigError, KeelError, ResetNeededError, UnknownEnvError, __version__, env_ids
from keel.env import KeelEnv
from keel.vector import KeelVectorEnv

__all__ = [
    "ActionError", "ConfigError", "KeelEnv", "KeelError", "KeelVectorEnv", "ResetNeededError", "UnknownEnvError",
    "__version__", "env_ids", "make", "make_vec",
]


def _register_all() -> None:
    for env_id in _core.env_ids():
        if env_id in gymnasium.registry:
            continue
        spec = json.loads(_core.EnvCore(env_id).spec_json())
        gymnasium.register(
            id=env_id,
            entry_point="keel.env:KeelEnv",
            vector_entry_point="keel.vector:KeelVectorEnv",
            max_episode_steps=spec["max_episode_steps"],
            reward_threshold=spec["reward_threshold"],
            kwargs={"env_id": env_id},
        )


def make(env_id: str, **kwargs) -> gymnasium.Env:
    """``gymnasium.make`` for a Keel id; unknown ids raise ``keel.UnknownEnvError``."""
    if env_id not in _core.env_ids():
        raise UnknownEnvError(f"unknown environment id `{env_id}`; registered ids: {', '.join(_core.env_ids())}")
    return gymnasium.make(env_id, **kwargs)


def make_vec(env_id: str, num_envs: int = 1, **kwargs) -> KeelVectorEnv:
    """``gymnasium.make_vec`` for a Keel id, on the Rust engine."""
    if env_id not in _core.env_ids():
        raise UnknownEnvError(f"unknown environment id `{env_id}`; registered ids: {', '.join(_core.env_ids())}")
    return gymnasium.make_vec(env_id, num_envs=num_envs, **kwargs)


_register_all()
