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
``VecMonitor``. The env's per-step extras are in ``infos[i]`` by name.

Per-env control, as SB3's ``VecEnv`` API has it: ``set_options([...])`` gives each env its own reset
options (e.g. a ``state``); ``env_method("set_params", indices=[...], **params)`` and
``set_attr(name, value, indices=[...])`` set per-reset parameters of the chosen envs (an attribute
that is not a parameter raises ``keel.ConfigError`` naming the known ones); ``get_attr(name)`` reads
them back (and ``"state"``, the sub-env's internal state).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
from stable_baselines3.common.vec_env import VecEnv as _Sb3VecEnv

from keel import _core
from keel._util import ClosedCore, check_count, check_seed, restore_pickled, snapshot_of, space_from_spec, to_json
from keel.vector import _SERIAL_BELOW


class VecEnv(_Sb3VecEnv):
    """``n_envs`` copies of a Keel env on the Rust engine, as an SB3 ``VecEnv``."""

    def __init__(self, env_id: str, n_envs: int = 1, *, workers: int | None = None,
                 max_episode_steps: int | None = None, **config: Any):
        import os

        n_envs = check_count(n_envs, "n_envs", 1)
        if workers is None:
            workers = 0 if n_envs < _SERIAL_BELOW else min(n_envs, os.cpu_count() or 1)
        workers = check_count(workers, "workers", 0)
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
        self._extras = list(spec.get("extras", []))

    def reset(self) -> np.ndarray:
        seeds = None
        if any(s is not None for s in self._seeds):
            # SB3 seeds env i with seed + i; an env without a seed continues its stream.
            base = next(s for s in self._seeds if s is not None)
            seeds = [(s if s is not None else base + i) % 2**64 for i, s in enumerate(self._seeds)]
        per_env = [dict(o or {}) for o in (self._options or [])]
        options = to_json(per_env) if any(per_env) else None
        obs, _ = self._core.reset(seeds, options, None)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._was_reset = True
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if not self._was_reset:
            self.reset()
        obs, rewards, terminated, truncated, ends = self._core.step(self._actions)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for name in self._extras:
            for i, value in enumerate(ends[name]):
                infos[i][name] = float(value)
        if "episode" in ends:
            final_obs, episode = ends["final_obs"], ends["episode"]
            final_info = ends["final_info"]
            for i in np.flatnonzero(ends["_episode"]):
                infos[i]["terminal_observation"] = final_obs[i]
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                infos[i]["episode"] = {"r": float(episode["r"][i]), "l": int(episode["l"][i]),
                                       "t": round(float(episode["t"][i]), 6)}
                for name in self._extras:  # the terminal step's extras, not the reset's
                    infos[i][name] = float(final_info[name][i])
        return obs, rewards.astype(np.float32), dones, infos

    def seed(self, seed: int | None = None):
        """Seeds env i with ``seed + i`` at the next reset (SB3's convention)."""
        return super().seed(check_seed(seed))

    def close(self) -> None:
        self._core = ClosedCore(f"this {self.env_id} SB3 vector env")

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        chosen = [int(indices)] if isinstance(indices, (int, np.integer)) else [int(i) for i in indices]
        for i in chosen:
            if not 0 <= i < self.num_envs:
                raise IndexError(f"sub-env index {i} out of range for {self.num_envs} envs")
        return chosen

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        """``"state"``: each sub-env's internal state; a per-reset parameter: its value in each
        sub-env; anything else: the attribute of this adapter (shared by all)."""
        chosen = self._indices(indices)
        if attr_name == "state":
            return [self._core.state(i) for i in chosen]
        params = [json.loads(self._core.params_json(i)) for i in chosen]
        if chosen and attr_name in params[0]:
            return [p[attr_name] for p in params]
        value = getattr(self, attr_name)
        return [value for _ in chosen]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        """Sets the per-reset parameter ``attr_name`` of the chosen sub-envs (from their next
        reset on); an unknown name raises ``keel.ConfigError`` listing the parameters."""
        self._core.set_params(to_json({attr_name: value}), self._indices(indices))

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        """``set_params(**params)`` and ``params()`` on the chosen sub-envs."""
        chosen = self._indices(indices)
        if method_args:
            raise TypeError(f"{method_name}: Keel sub-env methods take keyword arguments only")
        if method_name == "set_params":
            self._core.set_params(to_json(method_kwargs) or "{}", chosen)
            return [None for _ in chosen]
        if method_name == "params":
            return [json.loads(self._core.params_json(i)) for i in chosen]
        raise AttributeError(f"Keel sub-envs have no method {method_name!r} reachable through env_method "
                             "(set_params, params)")

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]

    def __getstate__(self) -> dict[str, Any]:
        # Rebuilt from its constructor arguments, then (once reset) restored from a snapshot of
        # the Rust envs, so a copy continues exactly where this one stands.
        closed = isinstance(self._core, ClosedCore)
        snapshot = None if closed else snapshot_of(self._core, self._was_reset, f"this {self.env_id} SB3 vector env")
        return {"args": self._args, "snapshot": snapshot, "closed": closed, "seeds": self._seeds,
                "options": self._options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        args = dict(state["args"])
        config = args.pop("config")
        self.__init__(**args, **config)
        if not restore_pickled(self, state, "_was_reset"):
            return
        self._seeds = state.get("seeds", self._seeds)
        self._options = state.get("options", self._options)


def make_vec(env_id: str, n_envs: int = 1, *, seed: int | None = None, workers: int | None = None,
             max_episode_steps: int | None = None, **config: Any) -> VecEnv:
    """An SB3 ``VecEnv`` of ``n_envs`` Keel envs; ``seed`` seeds env i with ``seed + i``."""
    env = VecEnv(env_id, n_envs, workers=workers, max_episode_steps=max_episode_steps, **config)
    if seed is not None:
        env.seed(seed)
    return env
