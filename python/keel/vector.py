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
from keel._core import ConfigError
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
    - ``batch_size=B`` (``1 <= B <= num_envs``) makes it asynchronous, as EnvPool's
      ``batch_size < num_envs``: ``async_reset()`` resets every env, ``recv()`` waits for the first
      ``B`` envs that finished and returns ``(obs, rewards, terminations, truncations, infos)``
      for them (``B`` rows, their ids in ``infos["env_id"]``), ``send(actions, env_id)`` hands the
      next actions to those envs (default ``env_id``: the last ``recv``'s) and returns at once, so
      the envs step while you compute. ``step(actions, env_id=None)`` is ``send`` then ``recv``;
      ``reset()`` is ``async_reset`` then ``recv``. Each env's trajectory is the one sync stepping
      gives for the same seeds and actions. ``workers`` threads step (default: one per core, up
      to ``B``); ``workers=0`` steps inside ``recv``, in the order sent. Autoreset ``NEXT_STEP``
      or ``SAME_STEP``; with ``copy=False`` a received batch is a view valid until the next
      ``recv``.
    """

    def __init__(self, env_id: str, num_envs: int, *, autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                 workers: int | None = None, max_episode_steps: int | None = None, render_mode: str | None = None,
                 copy: bool = True, batch_size: int | None = None, **config: Any):
        if render_mode is not None:
            raise ValueError(f"{env_id} does not render (render_mode must be None, got {render_mode!r})")
        num_envs = check_count(num_envs, "num_envs", 1)
        mode = AutoresetMode(autoreset_mode)
        if batch_size is not None:
            batch_size = check_count(batch_size, "batch_size", 1)
            if batch_size > num_envs:
                raise ConfigError(f"batch_size must be 1 to num_envs = {num_envs}, got {batch_size}")
        if workers is None:
            if batch_size is not None:
                workers = min(batch_size, os.cpu_count() or 1)
            else:
                workers = 0 if num_envs < _SERIAL_BELOW else min(int(num_envs), os.cpu_count() or 1)
        workers = check_count(workers, "workers", 0)
        self._args = dict(env_id=env_id, num_envs=int(num_envs), autoreset_mode=mode, workers=workers,
                          max_episode_steps=max_episode_steps, copy=bool(copy), batch_size=batch_size,
                          config=dict(config))
        core_config = dict(config)
        if max_episode_steps is not None:
            core_config["max_episode_steps"] = max_episode_steps
        self.batch_size = int(num_envs) if batch_size is None else batch_size
        self.is_async = batch_size is not None
        if self.is_async:
            self._core = _core.AsyncVecCore(env_id, int(num_envs), batch_size, int(workers), _MODES[mode],
                                            to_json(core_config), bool(copy))
        else:
            self._core = _core.VecCore(env_id, int(num_envs), int(workers), _MODES[mode], to_json(core_config),
                                       bool(copy))
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
        if self.is_async:
            self.recv = self._recv_integer_obs if self._integer_obs else self._core.recv
            self.send = self._core.send

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:  # noqa: F811
        return self._core.step(actions)

    def _to_space(self, obs: np.ndarray) -> np.ndarray:
        return obs.astype(np.int64).reshape((len(obs),) + self.single_observation_space.shape)

    @property
    def extras(self) -> list[str]:
        """Names of the per-step extras every ``infos`` carries."""
        return list(json.loads(self._core.spec_json()).get("extras", []))

    def _step_integer_obs(self, actions: Any, *args: Any):
        obs, rewards, terminations, truncations, infos = self._core.step(actions, *args)
        return self._to_space(obs), rewards, terminations, truncations, infos

    def _recv_integer_obs(self):
        obs, rewards, terminations, truncations, infos = self._core.recv()
        return self._to_space(obs), rewards, terminations, truncations, infos

    # ---- async mode (batch_size given) -------------------------------------------------------

    def _need_async(self, what: str) -> None:
        if not self.is_async:
            raise ValueError(f"{what} needs async mode: make the vector env with batch_size=B")

    def _need_sync(self, what: str) -> None:
        if self.is_async:
            raise ValueError(f"{what} is not available in async mode (batch_size={self.batch_size})")

    def async_reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None) -> None:
        """Resets every env and queues the results for ``recv`` (env 0 first); envs still
        stepping finish first and their results are dropped. Seeds as ``reset``."""
        self._need_async("async_reset")
        seeds, options_json, mask = self._reset_args(seed, options)
        if mask is not None:
            raise ValueError("async_reset resets every env: reset_mask is not supported in async mode")
        self._core.async_reset(seeds, options_json)

    def send(self, actions: Any, env_id: Any = None) -> None:  # noqa: F811 (bound to the core in async mode)
        """Hands ``actions`` (one row per id) to the envs ``env_id`` (default: those of the last
        ``recv``) and returns at once."""
        self._need_async("send")
        self._core.send(actions, env_id)

    def recv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:  # noqa: F811
        """Waits for the first ``batch_size`` envs that finished; their ids are ``infos["env_id"]``."""
        self._need_async("recv")
        return self._core.recv()

    @property
    def in_flight(self) -> int:
        """Envs sent (or reset) whose results have not been received (async mode)."""
        self._need_async("in_flight")
        return self._core.in_flight()

    def step_into(self, actions: Any, obs: np.ndarray, rewards: np.ndarray, terminations: np.ndarray,
                  truncations: np.ndarray) -> dict[str, Any]:
        """Steps and writes the results into the given C-contiguous arrays (obs of the observation
        dtype and shape ``(num_envs, *obs_shape)``, float64 rewards, bool flags); returns the infos."""
        self._need_sync("step_into")
        return self._core.step_into(actions, obs, rewards, terminations, truncations)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if self.is_async:
            if isinstance(seed, (int, np.integer)):
                super().reset(seed=check_seed(seed))
            self.async_reset(seed=seed, options=options)
            obs, _, _, _, infos = self.recv()
            return obs, infos
        seeds, options_json, mask = self._reset_args(seed, options)
        obs, infos = self._core.reset(seeds, options_json, mask)
        if self._integer_obs:
            return self._to_space(obs), infos
        return obs, infos

    def _reset_args(self, seed: Any, options: Any) -> tuple[list[int] | None, str | None, list[bool] | None]:
        """Seeds (one per env, or None), options as JSON and the reset mask of a reset."""
        if isinstance(seed, (int, np.integer)):
            seed = check_seed(seed)
            if not self.is_async:
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
        return seeds, options_json, mask

    def _index(self, index: Any) -> int:
        """``index`` as a sub-env index, or an ``IndexError`` saying the range."""
        i = int(index)
        if not 0 <= i < self.num_envs:
            raise IndexError(f"sub-env index {i} out of range for {self.num_envs} envs")
        return i

    def state(self, index: int) -> np.ndarray | None:
        """The full internal state of sub-env ``index``, or None."""
        self._need_sync("state")
        state = self._core.state(self._index(index))
        return None if state is None else np.asarray(state, dtype=np.float64)

    def set_params(self, indices: list[int] | None = None, **params: Any) -> None:
        """Sets per-reset parameters of the sub-envs ``indices`` (default: all) for every later
        reset, autoresets included."""
        self._need_sync("set_params")
        self._core.set_params(to_json(params) or "{}", None if indices is None else [self._index(i) for i in indices])

    def params(self, index: int) -> dict[str, Any]:
        """The per-reset parameters of sub-env ``index``."""
        self._need_sync("params")
        return json.loads(self._core.params_json(self._index(index)))

    def close_extras(self, **kwargs: Any) -> None:
        self._core = ClosedCore(f"this {self._args['env_id']} vector env")
        self.step = self._closed_step
        if self.is_async:
            self.send = lambda *args, **kwargs: self._core.send(*args, **kwargs)
            self.recv = lambda: self._core.recv()

    def _closed_step(self, actions: Any):
        return self._core.step(actions)

    def __getstate__(self) -> dict[str, Any]:
        return {"args": self._args, "spec": getattr(self, "spec", None)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        args = dict(state["args"])
        config = args.pop("config")
        self.__init__(**args, **config)
        self.spec = state["spec"]
