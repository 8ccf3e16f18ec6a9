"""Stable-Baselines3 access: the Rust engine as an SB3 ``VecEnv`` (no DummyVecEnv/SubprocVecEnv).

::

    from stable_baselines3 import PPO
    import keel.sb3

    model = PPO("MlpPolicy", keel.sb3.make_vec("keel/CartPole-v1", n_envs=8))
    model.learn(100_000)

SB3's same-step conventions hold: a finished env is reset inside the step, its last observation is
in ``infos[i]["terminal_observation"]`` and ``infos[i]["TimeLimit.truncated"]`` says whether the
episode was cut by the time limit. ``infos[i]["episode"]`` carries the episode's return ``r``, length
``l`` and time ``t``, as SB3's ``Monitor`` does, so the training logs show ``ep_rew_mean`` without a
``VecMonitor``.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
from stable_baselines3.common.vec_env import VecEnv as _Sb3VecEnv

from keel import _core
from keel._util import space_from_spec, to_json
from keel.vector import _SERIAL_BELOW


class VecEnv(_Sb3VecEnv):
    """``n_envs`` copies of a Keel env on the Rust engine, as an SB3 ``VecEnv``."""

    def __init__(self, env_id: str, n_envs: int = 1, *, workers: int | None = None,
                 max_episode_steps: int | None = None, **config: Any):
        import os

        if workers is None:
            workers = 0 if n_envs < _SERIAL_BELOW else min(n_envs, os.cpu_count() or 1)
        self._args = dict(env_id=env_id, n_envs=n_envs, workers=workers, max_episode_steps=max_episode_steps, config=config)
        core_config = dict(config)
        if max_episode_steps is not None:
            core_config["max_episode_steps"] = max_episode_steps
        self._core = _core.VecCore(env_id, int(n_envs), int(workers), "same_step", to_json(core_config))
        spec = json.loads(self._core.spec_json())
        self.env_id = env_id
        self.render_mode = None
        super().__init__(int(n_envs), space_from_spec(spec["observation_space"]), space_from_spec(spec["action_space"]))
        self._actions: np.ndarray | None = None
        self._was_reset = False

    def reset(self) -> np.ndarray:
        seeds = None
        if any(s is not None for s in self._seeds):
            # SB3 seeds env i with seed + i; an env without a seed continues its stream.
            base = next(s for s in self._seeds if s is not None)
            seeds = [s if s is not None else base + i for i, s in enumerate(self._seeds)]
        options = self._options[0] if self._options and self._options[0] else None
        obs = self._core.reset(seeds, to_json(options), None)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._was_reset = True
        return obs.reshape((self.num_envs, *self.observation_space.shape))

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if not self._was_reset:
            self.reset()
        obs, rewards, terminated, truncated, ends = self._core.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if ends:
            final_obs, episode = ends["final_obs"], ends["episode"]
            for i in np.flatnonzero(ends["_episode"]):
                infos[i]["terminal_observation"] = final_obs[i].reshape(self.observation_space.shape)
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                infos[i]["episode"] = {"r": float(episode["r"][i]), "l": int(episode["l"][i]),
                                       "t": round(float(episode["t"][i]), 6)}
        return obs.reshape((self.num_envs, *self.observation_space.shape)), rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self._core = None

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        if attr_name == "state":
            return [self._core.state(i) for i in self._indices(indices)]
        value = getattr(self, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        if method_name == "set_params":
            self._core.set_params(to_json(method_kwargs) or "{}")
            return [None for _ in self._indices(indices)]
        raise AttributeError(f"Keel sub-envs have no method {method_name!r} reachable through env_method")

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]

    def __getstate__(self) -> dict[str, Any]:
        return {"args": self._args}

    def __setstate__(self, state: dict[str, Any]) -> None:
        args = dict(state["args"])
        config = args.pop("config")
        self.__init__(**args, **config)


def make_vec(env_id: str, n_envs: int = 1, *, seed: int | None = None, workers: int | None = None,
             max_episode_steps: int | None = None, **config: Any) -> VecEnv:
    """An SB3 ``VecEnv`` of ``n_envs`` Keel envs; ``seed`` seeds env i with ``seed + i``."""
    env = VecEnv(env_id, n_envs, workers=workers, max_episode_steps=max_episode_steps, **config)
    if seed is not None:
        env.seed(seed)
    return env
