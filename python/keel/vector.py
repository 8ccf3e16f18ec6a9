"""`keel.vector.KeelVectorEnv`: the Rust vector engine as a `gymnasium.vector.VectorEnv`."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from keel import _core
from keel._util import ClosedCore, check_count, check_seed, space_from_spec, to_json

_MODES = {AutoresetMode.NEXT_STEP: "next_step", AutoresetMode.SAME_STEP: "same_step", AutoresetMode.DISABLED: "disabled"}

# Below this many envs, one thread beats the pool's hand-offs for cheap envs.
_SERIAL_BELOW = 64


class KeelVectorEnv(VectorEnv):
    """``num_envs`` Keel envs stepped by the Rust engine: worker threads, no subprocesses.

    - ``gymnasium.make_vec("keel/<Name>-v<N>", num_envs=..., **config)`` builds it (its vector entry
      point); sub-env ``i`` of ``reset(seed=s)`` is seeded ``s + i``.
    - ``autoreset_mode``: ``AutoresetMode.NEXT_STEP`` (default), ``SAME_STEP`` (terminal
      observations in ``infos["final_obs"]``) or ``DISABLED`` (reset with
      ``options={"reset_mask": mask}``).
    - ``workers``: threads of the Rust pool (0: serial); default: serial below 64 envs, else one
      per core.
    - Observations come in the observation space's dtype and shape ``(num_envs, *obs_shape)``.
      ``copy=True`` (default, as Gymnasium's vector envs) returns fresh arrays; ``copy=False``
      returns a read-only view of the engine's own batch buffer: no copy at all, the same array
      memory every step, overwritten by the next ``step``/``reset`` (copy it to keep it).
    - ``infos`` holds the env's per-step extras (``infos[name]`` with mask ``infos["_" + name]``);
      episode statistics come in ``infos["episode"]`` (``r``, ``l``, ``t``) with mask
      ``infos["_episode"]``, as Gymnasium's ``RecordEpisodeStatistics`` writes them.
    - ``reset(options=...)``: one mapping for every env (plus ``"reset_mask"``), or a list of one
      mapping per env (e.g. a different ``state`` for each).
    - The GIL is released while stepping (steps shorter than 5 µs keep it: the hand-off would cost
      more). ``step_into`` writes into arrays you own instead.
    """

    def __init__(self, env_id: str, num_envs: int, *, autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                 workers: int | None = None, max_episode_steps: int | None = None, render_mode: str | None = None,
                 copy: bool = True, **config: Any):
        if render_mode is not None:
            raise ValueError(f"{env_id} does not render (render_mode must be None, got {render_mode!r})")
        num_envs = check_count(num_envs, "num_envs", 1)
        mode = AutoresetMode(autoreset_mode)
        if workers is None:
            workers = 0 if num_envs < _SERIAL_BELOW else min(int(num_envs), os.cpu_count() or 1)
        workers = check_count(workers, "workers", 0)
        self._args = dict(env_id=env_id, num_envs=int(num_envs), autoreset_mode=mode, workers=workers,
                          max_episode_steps=max_episode_steps, copy=bool(copy), config=dict(config))
        core_config = dict(config)
        if max_episode_steps is not None:
            core_config["max_episode_steps"] = max_episode_steps
        self._core = _core.VecCore(env_id, int(num_envs), int(workers), _MODES[mode], to_json(core_config), bool(copy))
        spec = json.loads(self._core.spec_json())
        self.num_envs = int(num_envs)
        self.render_mode = None
        self.metadata = {"autoreset_mode": mode, "render_modes": []}
        self.copy = bool(copy)
        self.single_observation_space = space_from_spec(spec["observation_space"])
        self.single_action_space = space_from_spec(spec["action_space"])
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        # The Rust step returns Gymnasium's 5-tuple: bind it directly, no Python frame per step,
        # unless observations are integers (Discrete / MultiDiscrete), which travel as floats.
        self._integer_obs = isinstance(self.single_observation_space, (spaces.Discrete, spaces.MultiDiscrete))
        self.step = self._step_integer_obs if self._integer_obs else self._core.step

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:  # noqa: F811
        return self._core.step(actions)

    def _to_space(self, obs: np.ndarray) -> np.ndarray:
        return obs.astype(np.int64).reshape(self.observation_space.shape)

    @property
    def extras(self) -> list[str]:
        """Names of the per-step extras every ``infos`` carries."""
        return list(json.loads(self._core.spec_json()).get("extras", []))

    def _step_integer_obs(self, actions: Any):
        obs, rewards, terminations, truncations, infos = self._core.step(actions)
        return self._to_space(obs), rewards, terminations, truncations, infos

    def step_into(self, actions: Any, obs: np.ndarray, rewards: np.ndarray, terminations: np.ndarray,
                  truncations: np.ndarray) -> dict[str, Any]:
        """Steps and writes the results into the given C-contiguous arrays (obs of the observation
        dtype and shape ``(num_envs, *obs_shape)``, float64 rewards, bool flags); returns the infos."""
        return self._core.step_into(actions, obs, rewards, terminations, truncations)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if isinstance(seed, (int, np.integer)):
            seed = check_seed(seed)
            super().reset(seed=seed)
            seeds = [(seed + i) % 2**64 for i in range(self.num_envs)]
        elif seed is None:
            seeds = None
        elif isinstance(seed, (list, tuple, np.ndarray)):
            seeds = [check_seed(s, f"seed[{i}]") for i, s in enumerate(seed)]
        else:
            seeds = [check_seed(seed)]
            if len(seeds) != self.num_envs:
                raise ValueError(f"{len(seeds)} seeds for {self.num_envs} envs")
        if isinstance(options, (list, tuple)):
            # One mapping per sub-env.
            if len(options) != self.num_envs:
                raise ValueError(f"{len(options)} option mappings for {self.num_envs} envs")
            per_env = [dict(o or {}) for o in options]
            mask = None
            options_json = to_json(per_env) or json.dumps(per_env)
        else:
            options = dict(options or {})
            mask = options.pop("reset_mask", None)
            options_json = to_json(options)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"reset_mask must have shape ({self.num_envs},), got {mask.shape}")
            mask = mask.tolist()
        obs, infos = self._core.reset(seeds, options_json, mask)
        if self._integer_obs:
            return self._to_space(obs), infos
        return obs, infos

    def _index(self, index: Any) -> int:
        """``index`` as a sub-env index, or an ``IndexError`` saying the range."""
        i = int(index)
        if not 0 <= i < self.num_envs:
            raise IndexError(f"sub-env index {i} out of range for {self.num_envs} envs")
        return i

    def state(self, index: int) -> np.ndarray | None:
        """The full internal state of sub-env ``index``, or None."""
        state = self._core.state(self._index(index))
        return None if state is None else np.asarray(state, dtype=np.float64)

    def set_params(self, indices: list[int] | None = None, **params: Any) -> None:
        """Sets per-reset parameters of the sub-envs ``indices`` (default: all) for every later
        reset, autoresets included."""
        self._core.set_params(to_json(params) or "{}", None if indices is None else [self._index(i) for i in indices])

    def params(self, index: int) -> dict[str, Any]:
        """The per-reset parameters of sub-env ``index``."""
        return json.loads(self._core.params_json(self._index(index)))

    def close_extras(self, **kwargs: Any) -> None:
        self._core = ClosedCore(f"this {self._args['env_id']} vector env")
        self.step = self._closed_step

    def _closed_step(self, actions: Any):
        return self._core.step(actions)

    def __getstate__(self) -> dict[str, Any]:
        return {"args": self._args, "spec": getattr(self, "spec", None)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        args = dict(state["args"])
        config = args.pop("config")
        self.__init__(**args, **config)
        self.spec = state["spec"]
