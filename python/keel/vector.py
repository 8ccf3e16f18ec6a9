"""Keel's vector envs on the Rust engine.

- ``KeelVectorEnv``: every env stepped together, a ``gymnasium.vector.VectorEnv``.
- ``KeelAsyncVectorEnv``: EnvPool's asynchronous ``send`` / ``recv`` (``batch_size < num_envs``);
  not a ``VectorEnv``.

``gymnasium.make_vec`` and ``keel.make_vec`` build the first, or the second when given
``batch_size`` (``make_vector``, the vector entry point of every Keel id).
"""

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
from keel._util import (ClosedCore, check_count, check_options, check_seed, check_seeds, restore_pickled, snapshot_of,
                        space_from_spec, to_json)

_MODES = {AutoresetMode.NEXT_STEP: "next_step", AutoresetMode.SAME_STEP: "same_step", AutoresetMode.DISABLED: "disabled"}

# Below this many envs, one thread beats the pool's hand-offs for cheap envs.
_SERIAL_BELOW = 64


def make_vector(env_id: str, num_envs: int = 1, *, batch_size: int | None = None, **kwargs: Any) -> KeelVectorEnv | KeelAsyncVectorEnv:
    """The vector entry point of every Keel id (what ``gymnasium.make_vec`` and ``keel.make_vec``
    call): a ``KeelAsyncVectorEnv`` receiving ``batch_size`` envs at a time when ``batch_size``
    is given, else a ``KeelVectorEnv``."""
    if batch_size is None:
        return KeelVectorEnv(env_id, num_envs, **kwargs)
    return KeelAsyncVectorEnv(env_id, num_envs, batch_size, **kwargs)


def _integer_rows(space: spaces.Space):
    """How to turn the core's float32 rows into a batch of an integer space (Discrete and
    MultiDiscrete observations travel as float32 rows), or None for a Box."""
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        return lambda obs: obs.astype(np.int64).reshape((len(obs),) + space.shape)
    return None


class KeelVectorEnv(VectorEnv):
    """``num_envs`` Keel envs stepped together by the Rust engine: worker threads, no subprocesses.

    - ``gymnasium.make_vec("keel/<Name>-v<N>", num_envs=..., **config)`` builds it (its vector entry
      point); sub-env ``i`` of ``reset(seed=s)`` is seeded ``s + i``; ``seed`` may also be a list
      of one seed per env.
    - ``autoreset_mode``: ``AutoresetMode.NEXT_STEP`` (default), ``SAME_STEP`` (terminal
      observations in ``infos["final_obs"]``) or ``DISABLED`` (reset with
      ``options={"reset_mask": mask}``).
    - ``workers``: threads of the Rust pool (0: serial); default: serial below 64 envs, else one
      per core.
    - Observations come in the observation space's dtype and shape ``(num_envs, *obs_shape)``.
      ``copy=True`` (default, as Gymnasium's vector envs) returns a fresh array every call.
      ``copy=False`` returns a read-only view of the engine's own batch buffer, no copy at all:
      the same memory every call. The next ``step``, ``step_into`` or ``reset`` rewrites that
      memory in place, so an earlier view then shows the new observations; and since a step
      releases the GIL, a view read by another thread while this env steps shows rows in the
      middle of being written. Use a view before the next call on this env, or copy it
      (``obs.copy()``) to keep it; for arrays that never change, use ``copy=True``.
    - ``infos`` holds the env's per-step extras (``infos[name]`` with mask ``infos["_" + name]``);
      episode statistics come in ``infos["episode"]`` (``r``, ``l``, ``t``) with mask
      ``infos["_episode"]``, as Gymnasium's ``RecordEpisodeStatistics`` writes them.
    - ``reset(options=...)``: one mapping for every env (plus ``"reset_mask"``), or a list of one
      mapping per env (e.g. a different ``state`` for each).
    - The GIL is released while stepping (steps shorter than 5 µs keep it: the hand-off would cost
      more). ``step_into`` writes into arrays you own instead.
    - ``pickle`` and ``copy.deepcopy`` copy the envs' state (snapshots): the copy continues
      exactly where the original stands. Envs that cannot snapshot are refused with a
      ``TypeError`` once reset.
    - For EnvPool's asynchronous ``send`` / ``recv``, see ``KeelAsyncVectorEnv``
      (``make_vec(..., batch_size=B)``).
    """

    def __init__(self, env_id: str, num_envs: int, *, autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
                 workers: int | None = None, max_episode_steps: int | None = None, render_mode: str | None = None,
                 copy: bool = True, batch_size: int | None = None, **config: Any):
        if batch_size is not None:
            raise ConfigError("batch_size is for asynchronous stepping, which KeelVectorEnv does not do: use "
                              "keel.KeelAsyncVectorEnv, or keel.make_vec(..., batch_size=B)")
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
        self._started = False
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
        self._to_space = _integer_rows(self.single_observation_space)
        self.step = self._core.step if self._to_space is None else self._step_integer_obs

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:  # noqa: F811
        return self._core.step(actions)

    @property
    def extras(self) -> list[str]:
        """Names of the per-step extras every ``infos`` carries."""
        return list(json.loads(self._core.spec_json()).get("extras", []))

    def _step_integer_obs(self, actions: Any):
        obs, rewards, terminations, truncations, infos = self._core.step(actions)
        return self._to_space(obs), rewards, terminations, truncations, infos

    def step_into(self, actions: Any, obs: np.ndarray, rewards: np.ndarray, terminations: np.ndarray,
                  truncations: np.ndarray) -> dict[str, Any]:
        """Steps and writes the results into arrays you own: ``obs`` of the observation dtype and
        shape ``(num_envs, *obs_shape)``, ``rewards`` float64 of shape ``(num_envs,)``,
        ``terminations`` and ``truncations`` bool of shape ``(num_envs,)``; each C-contiguous,
        writable and sharing no memory with another. Returns the infos. Every buffer (and the
        actions) is checked before the envs step: a wrong one raises ``keel.ActionError`` naming
        it and leaves the envs as they were."""
        return self._core.step_into(actions, obs, rewards, terminations, truncations)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | list | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        seeds = check_seeds(seed, self.num_envs)
        options_json, mask = check_options(options, self.num_envs)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (self.num_envs,):
                raise ConfigError(f"reset_mask must have shape ({self.num_envs},), got {mask.shape}")
            mask = mask.tolist()
        if isinstance(seed, (int, np.integer)):
            super().reset(seed=check_seed(seed))
        obs, infos = self._core.reset(seeds, options_json, mask)
        self._started = True
        return (obs if self._to_space is None else self._to_space(obs)), infos

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
        if self.closed:
            return {"args": self._args, "spec": getattr(self, "spec", None), "closed": True}
        snapshot = snapshot_of(self._core, self._started, f"this {self._args['env_id']} vector env")
        return {"args": self._args, "spec": getattr(self, "spec", None), "snapshot": snapshot,
                "np_random": getattr(self, "_np_random", None), "np_random_seed": getattr(self, "_np_random_seed", None)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        args = dict(state["args"])
        config = args.pop("config")
        self.__init__(**args, **config)
        self.spec = state["spec"]
        if not restore_pickled(self, state, "_started"):
            return
        if state.get("np_random") is not None:
            self._np_random = state["np_random"]
            self._np_random_seed = state["np_random_seed"]


class KeelAsyncVectorEnv:
    """``num_envs`` Keel envs stepped asynchronously, as EnvPool's ``batch_size < num_envs``:
    ``recv`` returns the first ``batch_size`` envs that finished, while the others step on.

    Made by ``keel.make_vec(id, num_envs=N, batch_size=B)`` (or ``gymnasium.make_vec``), or
    directly. ``1 <= B <= num_envs``.

    - ``async_reset(seed=..., options=...)`` resets every env (seeds and options as
      ``KeelVectorEnv.reset``) and queues the results; ``recv()`` waits for the first ``B`` envs
      that finished and returns ``(obs, rewards, terminations, truncations, infos)`` for them:
      ``B`` rows, row ``k`` being env ``infos["env_id"][k]`` (int32). ``send(actions, env_id)``
      hands one row of ``actions`` to each env of ``env_id`` (default: the last ``recv``'s) and
      returns at once, so the envs step while you compute.
    - ``step(actions, env_id=None)`` is ``send`` then ``recv``; ``reset(seed, options)`` is
      ``async_reset`` then ``recv`` and returns ``(obs, infos)``.
    - Spaces describe what ``recv`` returns: ``observation_space`` and ``action_space`` are
      batched for ``batch_size`` rows (``single_*`` for one env).
    - Each env's trajectory is the one ``KeelVectorEnv`` gives for the same seeds and actions.
      ``workers`` threads step (default: one per core, up to ``B``); ``workers=0`` steps inside
      ``recv``, in the order sent. Autoreset ``NEXT_STEP`` (default) or ``SAME_STEP``; ``infos``
      as ``KeelVectorEnv``'s, for the received rows.
    - ``copy=True`` (default) returns fresh observation arrays. ``copy=False`` returns a
      read-only view of the engine's own block for this ``recv`` (no copy): no later ``recv``,
      ``send`` or reset writes it while the view, or any array made from it, is alive, so it
      never changes; the block is reused once every array on it is gone.
    - It is not a ``gymnasium.vector.VectorEnv``: a step returns some envs, not all.
      Gymnasium's vector wrappers, Stable-Baselines3 and RLlib expect every env at every step
      and do not work with it; use ``KeelVectorEnv`` (no ``batch_size``) with them.
    - Bad calls (ids out of range or repeated, an env sent twice before its ``recv``, ``recv``
      with fewer than ``B`` envs in flight, wrong actions) raise ``keel.ActionError`` and change
      nothing; a failing env raises ``keel.PoisonedError`` until the next reset.
    - ``pickle`` and ``copy.deepcopy`` work before the first reset; after it, envs may be in
      flight and are refused with a ``TypeError``.
    """

    def __init__(self, env_id: str, num_envs: int, batch_size: int | None = None, *,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP, workers: int | None = None,
                 max_episode_steps: int | None = None, render_mode: str | None = None, copy: bool = True,
                 **config: Any):
        if render_mode is not None:
            raise ValueError(f"{env_id} does not render (render_mode must be None, got {render_mode!r})")
        num_envs = check_count(num_envs, "num_envs", 1)
        batch_size = num_envs if batch_size is None else check_count(batch_size, "batch_size", 1)
        if batch_size > num_envs:
            raise ConfigError(f"batch_size must be 1 to num_envs = {num_envs}, got {batch_size}")
        mode = AutoresetMode(autoreset_mode)
        if workers is None:
            workers = min(batch_size, os.cpu_count() or 1)
        workers = check_count(workers, "workers", 0)
        self._args = dict(env_id=env_id, num_envs=num_envs, batch_size=batch_size, autoreset_mode=mode,
                          workers=workers, max_episode_steps=max_episode_steps, copy=bool(copy), config=dict(config))
        core_config = dict(config)
        if max_episode_steps is not None:
            core_config["max_episode_steps"] = max_episode_steps
        self._core = _core.AsyncVecCore(env_id, num_envs, batch_size, workers, _MODES[mode], to_json(core_config),
                                        bool(copy))
        self._started = False
        self.closed = False
        spec = json.loads(self._core.spec_json())
        self.spec = None
        self.num_envs = num_envs
        self.batch_size = batch_size
        self.render_mode = None
        self.metadata = {"autoreset_mode": mode, "render_modes": []}
        self.copy = bool(copy)
        self.single_observation_space = space_from_spec(spec["observation_space"])
        self.single_action_space = space_from_spec(spec["action_space"])
        self.observation_space = batch_space(self.single_observation_space, batch_size)
        self.action_space = batch_space(self.single_action_space, batch_size)
        self._to_space = _integer_rows(self.single_observation_space)
        if self._to_space is None:
            # The Rust calls return the 5-tuple: bound directly, no Python frame per call.
            self.recv = self._core.recv
            self.step = self._core.step
            self.send = self._core.send

    @property
    def unwrapped(self) -> KeelAsyncVectorEnv:
        """The env itself (it has no wrappers)."""
        return self

    @property
    def extras(self) -> list[str]:
        """Names of the per-step extras every ``infos`` carries."""
        return list(json.loads(self._core.spec_json()).get("extras", []))

    @property
    def in_flight(self) -> int:
        """Envs sent (or reset) whose results have not been received."""
        return self._core.in_flight()

    def async_reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | list | None = None) -> None:
        """Resets every env and queues the results for ``recv`` (env 0 first); envs still
        stepping finish first and their results are dropped. Seeds and options as
        ``KeelVectorEnv.reset`` (no ``reset_mask``: every env is reset)."""
        seeds = check_seeds(seed, self.num_envs)
        options_json, mask = check_options(options, self.num_envs)
        if mask is not None:
            raise ConfigError("async_reset resets every env: reset_mask is not supported by KeelAsyncVectorEnv")
        self._core.async_reset(seeds, options_json)
        self._started = True

    def send(self, actions: Any, env_id: Any = None) -> None:  # noqa: F811 (bound to the core for Box spaces)
        """Hands ``actions`` (one row per id) to the envs ``env_id`` (default: those of the last
        ``recv``) and returns at once."""
        self._core.send(actions, env_id)

    def recv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:  # noqa: F811
        """Waits for the first ``batch_size`` envs that finished: ``(obs, rewards, terminations,
        truncations, infos)``, their ids in ``infos["env_id"]``."""
        obs, rewards, terminations, truncations, infos = self._core.recv()
        return (obs if self._to_space is None else self._to_space(obs)), rewards, terminations, truncations, infos

    def step(self, actions: Any, env_id: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:  # noqa: F811
        """``send(actions, env_id)`` then ``recv()``."""
        self.send(actions, env_id)
        return self.recv()

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | list | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """``async_reset`` then ``recv``: the first ``batch_size`` envs' start observations and
        infos (the others wait for the next ``recv``)."""
        self.async_reset(seed=seed, options=options)
        obs, _, _, _, infos = self.recv()
        return obs, infos

    def close(self) -> None:
        """Stops the workers; every later call raises ``keel.ClosedError``. Closing twice is fine."""
        if self.closed:
            return
        self.closed = True
        self._core = ClosedCore(f"this {self._args['env_id']} async vector env")
        for name in ("recv", "step", "send"):
            self.__dict__.pop(name, None)

    def __enter__(self) -> KeelAsyncVectorEnv:
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KeelAsyncVectorEnv({self._args['env_id']}, num_envs={self.num_envs}, batch_size={self.batch_size})"

    def __getstate__(self) -> dict[str, Any]:
        if self._started and not self.closed:
            raise TypeError(f"cannot pickle or copy this {self._args['env_id']} async vector env after its first reset: "
                            "envs may be in flight, and async stepping has no snapshots; make a new one with the same "
                            "arguments (KeelVectorEnv copies its state)")
        return {"args": self._args, "spec": self.spec, "closed": self.closed}

    def __setstate__(self, state: dict[str, Any]) -> None:
        args = dict(state["args"])
        config = args.pop("config")
        self.__init__(**args, **config)
        self.spec = state["spec"]
        if state["closed"]:
            self.close()
