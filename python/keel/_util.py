"""Helpers shared by the env classes: spaces from the Rust spec, JSON for options and config."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from gymnasium import spaces

_F32_MAX = float(np.finfo(np.float32).max)


def _bounds(values: list[float], shape: tuple[int, ...]) -> np.ndarray:
    """Per-element bounds of ``shape``: ``values`` reshaped, or its one value broadcast."""
    array = np.array(values, dtype=np.float64)
    if array.size == 1:
        return np.full(shape, array[0])
    return array.reshape(shape)


def space_from_spec(spec: dict[str, Any]) -> spaces.Space:
    """The Gymnasium space described by a Keel space (as serialised by the Rust core)."""
    kind = spec["type"]
    if kind == "box":
        dtype = np.dtype(spec["dtype"])
        shape = tuple(spec["shape"])
        # JSON has no infinities: the core writes unbounded directions as null. A bound of one
        # value holds for every element (a scalar bound, as an image space's).
        low = _bounds([-np.inf if v is None else v for v in spec["low"]], shape)
        high = _bounds([np.inf if v is None else v for v in spec["high"]], shape)
        if dtype == np.float32:
            # Bounds at float32's limits mean "unbounded" too (Gymnasium's CartPole uses them).
            low = np.where(low <= -_F32_MAX, -np.inf, low)
            high = np.where(high >= _F32_MAX, np.inf, high)
        return spaces.Box(low=low.astype(dtype), high=high.astype(dtype), shape=shape, dtype=dtype)
    if kind == "discrete":
        return spaces.Discrete(int(spec["n"]), start=int(spec["start"]))
    if kind == "multi_discrete":
        return spaces.MultiDiscrete(np.asarray(spec["nvec"], dtype=np.int64))
    raise ValueError(f"unknown space type {kind!r}")


_U64 = 2**64


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """``seed`` as an int in ``[0, 2**64)`` (or None), else a ``keel.ConfigError`` naming it."""
    from keel._core import ConfigError

    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < _U64:
        raise ConfigError(f"{name} must be an integer in [0, 2**64) or None, got {seed!r}")
    return int(seed)


def check_seeds(seed: Any, num_envs: int) -> list[int] | None:
    """The per-env seeds of a vector reset: ``None`` (every env continues its stream), an int
    ``s`` (env ``i`` gets ``s + i``) or a sequence of one int per env; anything else is a
    ``keel.ConfigError`` naming the argument."""
    from keel._core import ConfigError

    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        base = check_seed(seed)
        return [(base + i) % _U64 for i in range(num_envs)]
    if not isinstance(seed, (list, tuple, np.ndarray)):
        raise ConfigError(f"seed must be an integer, a list of {num_envs} integers (one per env) or None, "
                          f"got {type(seed).__name__}")
    seeds = list(seed)
    for i, s in enumerate(seeds):
        if s is None:
            raise ConfigError(f"seed[{i}] is None: a list of seeds needs an integer for every env "
                              "(seed=None continues every env's stream)")
        check_seed(s, f"seed[{i}]")
    if len(seeds) != num_envs:
        raise ConfigError(f"seed is a list of {len(seeds)} seeds for {num_envs} envs: give one per env")
    return [int(s) for s in seeds]


def check_options(options: Any, num_envs: int) -> tuple[str | None, Any]:
    """The reset options of a vector reset as JSON, and the ``reset_mask`` taken out of them:
    one mapping for every env, or a list of one mapping (or None) per env; anything else is a
    ``keel.ConfigError`` naming the argument."""
    from collections.abc import Mapping

    from keel._core import ConfigError

    if options is None:
        return None, None
    if isinstance(options, (list, tuple)):
        if len(options) != num_envs:
            raise ConfigError(f"options is a list of {len(options)} mappings for {num_envs} envs: give one per env")
        for i, o in enumerate(options):
            if o is not None and not isinstance(o, Mapping):
                raise ConfigError(f"options[{i}] must be a mapping (or None), got {type(o).__name__}")
        per_env = [dict(o or {}) for o in options]
        return to_json(per_env) or json.dumps(per_env), None
    if not isinstance(options, Mapping):
        raise ConfigError(f"options must be a mapping or a list of one mapping per env, got {type(options).__name__}")
    options = dict(options)
    mask = options.pop("reset_mask", None)
    return to_json(options), mask


def check_count(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum`` (and < 2**63), else a ``keel.ConfigError`` naming it."""
    from keel._core import ConfigError

    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not minimum <= int(value) < 2**63:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class ClosedCore:
    """Stands in for the Rust core of a closed env: every use raises ``keel.ClosedError``."""

    def __init__(self, what: str):
        self._what = what

    def __getattr__(self, name: str) -> Any:
        from keel._core import ClosedError

        raise ClosedError(f"{self._what} is closed")


def _non_finite(value: Any, path: str) -> str | None:
    """The path of the first NaN or infinite float inside ``value``, if any."""
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return f"{path} = {value}"
    if isinstance(value, int) and abs(value) > sys.float_info.max:  # beyond float64: infinite there
        digits = str(abs(value))
        return f"{path} = {'-' if value < 0 else ''}{digits[0]}e{len(digits) - 1}"
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
        return f"{path} (element {int(np.flatnonzero(~np.isfinite(value.ravel()))[0])})"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _non_finite(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    if isinstance(value, (list, tuple)):
        for k, item in enumerate(value):
            found = _non_finite(item, f"{path}[{k}]")
            if found:
                return found
    return None


def _to_json_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(mapping: Any) -> str | None:
    """A config or options mapping (or a list of them) as JSON (numpy arrays and scalars become
    lists and numbers); a NaN or infinite value is a ``keel.ConfigError`` naming its key."""
    if not mapping:
        return None
    found = _non_finite(mapping, "")
    if found:
        from keel._core import ConfigError

        raise ConfigError(f"`{found}` is not finite")
    return json.dumps(mapping, default=_to_json_value, allow_nan=False)


def snapshot_of(core: Any, started: bool, what: str) -> str | None:
    """The snapshot (JSON) that lets a pickled or copied env continue where ``core`` stands, or
    None before the first reset (the constructor arguments then say everything). An env that has
    started an episode and cannot snapshot is refused with a ``TypeError``, as Python refuses
    any object it cannot copy: a copy without its state would be a different env."""
    if not started:
        return None
    snapshot = core.snapshot_json()
    if snapshot is None:
        raise TypeError(f"cannot pickle or copy {what} after its first reset: its envs do not support "
                        "snapshots, so its state cannot be copied; make a new one with the same arguments")
    return snapshot


def restore_pickled(env: Any, state: dict[str, Any], started: str) -> bool:
    """The common part of a pickled env's ``__setstate__``, once ``env`` is rebuilt from its
    arguments: closes it if it was pickled closed, else restores the state it was pickled with
    (see ``snapshot_of``) and sets its ``started`` flag. Returns whether it is open."""
    if state.get("closed"):
        env.close()
        return False
    if state.get("snapshot") is not None:
        env._core.restore_json(state["snapshot"])
        setattr(env, started, True)
    return True
