"""`keel.env.KeelEnv`: one Rust env as a `gymnasium.Env`."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np

from keel import _core
from keel._util import ClosedCore, check_seed, restore_pickled, snapshot_of, space_from_spec, to_json


def _integer_obs(space: gym.Space):
    """How to turn the core's float32 observation row into an element of an integer space
    (Discrete and MultiDiscrete observations travel as float32 rows; Box observations come in
    their own dtype and shape)."""
    if isinstance(space, gym.spaces.Discrete):
        return lambda obs: np.int64(obs[0])
    if isinstance(space, gym.spaces.MultiDiscrete):
        return lambda obs: obs.astype(np.int64)
    return None


class KeelEnv(gym.Env):
    """A Keel env behind Gymnasium's API.

    Made by ``gymnasium.make("keel/<Name>-v<N>", **config)``, which also adds Gymnasium's
    ``TimeLimit`` with the registered episode cap (so the Rust core applies none of its own).
    Keyword arguments are the env's config fields (``keel list --json`` shows them); an unknown
    or invalid one raises ``keel.ConfigError`` (a ``ValueError``) naming the field.

    ``reset(options=...)`` takes ``{"state": [...]}`` to set the initial state exactly, and any
    per-reset parameter of the env (e.g. CartPole's ``low``/``high``).

    Observations are fresh arrays of the observation space's dtype and shape. ``info`` holds the
    env's per-step extras by name (the controlgym envs: ``state_cost``, ``action_cost``,
    ``state_norm``, ``diverged``; the humanoid: its reward terms and tracking error); Gymnasium's
    classic-control envs have none, as in Gymnasium.

    ``render_mode="rgb_array"`` is taken by the envs that draw themselves
    (``keel/HumanoidTrack-v1``); ``render()`` then returns a new ``(height, width, 3)`` uint8 array.

    ``pickle`` and ``copy.deepcopy`` copy the env's state (a snapshot of the Rust env): the copy
    continues exactly where the original stands. An env that cannot snapshot is refused with a
    ``TypeError`` once reset.
    """

    # The class admits rgb_array; each instance says whether its env draws (see __init__).
    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, env_id: str, render_mode: str | None = None, max_episode_steps: int | None = None, **config: Any):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"{env_id}: render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self._env_id = env_id
        self._config = dict(config)
        self._max_episode_steps = max_episode_steps
        core_config = {**config, "max_episode_steps": max_episode_steps}
        self._core = _core.EnvCore(env_id, to_json(core_config))
        self._started = False
        renders = self._core.renders()
        if render_mode is not None and not renders:
            raise ValueError(f"{env_id} does not render (render_mode must be None, got {render_mode!r})")
        fps = config.get("control_hz", 30)
        self.metadata = {"render_modes": ["rgb_array"] if renders else [], "render_fps": fps}
        spec = json.loads(self._core.spec_json())
        self.observation_space = space_from_spec(spec["observation_space"])
        self.action_space = space_from_spec(spec["action_space"])
        # The Rust step already returns Gymnasium's 5-tuple with fresh objects: bind it directly,
        # unless observations are integers (Discrete / MultiDiscrete), which travel as floats.
        self._obs_to_space = _integer_obs(self.observation_space)
        self.step = self._core.step if self._obs_to_space is None else self._step_integer_obs

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:  # noqa: F811
        return self._core.step(action)

    def _step_integer_obs(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._core.step(action)
        return self._obs_to_space(obs), reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        seed = check_seed(seed)
        super().reset(seed=seed)
        obs, info = self._core.reset(seed, to_json(options))
        self._started = True
        return (obs if self._obs_to_space is None else self._obs_to_space(obs)), info

    @property
    def state(self) -> np.ndarray | None:
        """The full internal state (float64), or None if the env exposes none."""
        state = self._core.state()
        return None if state is None else np.asarray(state, dtype=np.float64)

    def set_params(self, **params: Any) -> None:
        """Sets per-reset parameters for every later reset (what a curriculum changes)."""
        self._core.set_params(to_json(params) or "{}")

    def render(self) -> np.ndarray | None:
        """The current state drawn as a ``(height, width, 3)`` uint8 array with
        ``render_mode="rgb_array"``; ``None`` without a render mode, as in Gymnasium."""
        if self.render_mode is None:
            if not self.metadata["render_modes"]:
                raise NotImplementedError(f"{self._env_id} does not render: it has no render modes")
            gym.logger.warn(f"{self._env_id}: render() without a render_mode; make the env with render_mode='rgb_array'")
            return None
        return self._core.render()

    def close(self) -> None:
        self._core = ClosedCore(f"{self._env_id} env")
        self.step = self._core_step_closed
        self._closed = True

    def _core_step_closed(self, action: Any):
        return self._core.step(action)

    def __getstate__(self) -> dict[str, Any]:
        # Rebuilt from its constructor arguments, then (once reset) restored from a snapshot of
        # the Rust env: the copy continues exactly where this env stands.
        closed = getattr(self, "_closed", False)
        snapshot = None if closed else snapshot_of(self._core, self._started, f"this {self._env_id} env")
        return {"env_id": self._env_id, "config": self._config, "render_mode": self.render_mode,
                "max_episode_steps": self._max_episode_steps, "spec": self.spec, "snapshot": snapshot,
                "closed": closed, "np_random": self._np_random, "np_random_seed": self._np_random_seed}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["env_id"], render_mode=state["render_mode"],
                      max_episode_steps=state["max_episode_steps"], **state["config"])
        self.spec = state["spec"]
        if not restore_pickled(self, state, "_started"):
            return
        self._np_random = state.get("np_random")
        self._np_random_seed = state.get("np_random_seed")
