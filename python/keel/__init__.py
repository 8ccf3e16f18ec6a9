"""Keel from Python: Rust environments behind Gymnasium's API.

``import keel`` registers every Keel env with Gymnasium under its ``keel/...`` id::

    import gymnasium as gym
    import keel

    env = gym.make("keel/CartPole-v1")
    envs = gym.make_vec("keel/Pendulum-v1", num_envs=256)

``keel.make_vec(id, num_envs=N, batch_size=B)`` gives EnvPool's asynchronous ``send`` / ``recv``
(``keel.KeelAsyncVectorEnv``), and ``keel.sb3.make_vec`` a Stable-Baselines3 ``VecEnv`` on the
same engine.
"""

from __future__ import annotations

import gymnasium

from keel import _core
from keel._core import (ActionError, ClosedError, ConfigError, DataMissingError, InUseError, KeelError,
                        PoisonedError, ResetNeededError, UnknownEnvError, __version__, env_ids)
from keel.env import KeelEnv
from keel.vector import KeelAsyncVectorEnv, KeelVectorEnv

__all__ = [
    "ActionError", "ClosedError", "ConfigError", "DataMissingError", "InUseError", "KeelAsyncVectorEnv", "KeelEnv", "KeelError", "KeelVectorEnv", "PoisonedError",
    "ResetNeededError", "UnknownEnvError", "__version__", "env_ids", "make", "make_vec", "register_test_envs",
]


def _register_all() -> None:
    # From the registry lines alone: no env is built, so an env whose data is not installed is
    # still listed, and making it raises keel.DataMissingError saying how to install the data.
    for env_id, _description, max_episode_steps, reward_threshold in _core.env_registrations():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point="keel.env:KeelEnv",
            vector_entry_point="keel.vector:make_vector",
            max_episode_steps=max_episode_steps,
            reward_threshold=reward_threshold,
            kwargs={"env_id": env_id},
        )


def register_test_envs() -> None:
    """Registers Keel's test envs (``keel-test/...``: a uint8 image env, ``BytePattern-v0``)
    with Keel and Gymnasium; for test suites."""
    _core.register_test_envs()
    _register_all()


def make(env_id: str, **kwargs) -> gymnasium.Env:
    """``gymnasium.make`` for a Keel id; unknown ids raise ``keel.UnknownEnvError``."""
    if env_id not in _core.env_ids():
        raise UnknownEnvError(f"unknown environment id `{env_id}`; registered ids: {', '.join(_core.env_ids())}")
    return gymnasium.make(env_id, **kwargs)


def make_vec(env_id: str, num_envs: int = 1, **kwargs) -> KeelVectorEnv | KeelAsyncVectorEnv:
    """``gymnasium.make_vec`` for a Keel id, on the Rust engine: a ``keel.KeelVectorEnv``, or with
    ``batch_size=B`` a ``keel.KeelAsyncVectorEnv`` (EnvPool's ``send`` / ``recv``, ``B`` envs per
    ``recv``)."""
    if env_id not in _core.env_ids():
        raise UnknownEnvError(f"unknown environment id `{env_id}`; registered ids: {', '.join(_core.env_ids())}")
    return gymnasium.make_vec(env_id, num_envs=num_envs, **kwargs)


_register_all()
