"""Helpers shared by the env classes: spaces from the Rust spec, JSON for options and config."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from gymnasium import spaces

_F32_MAX = float(np.finfo(np.float32).max)


def space_from_spec(spec: dict[str, Any]) -> spaces.Space:
    """The Gymnasium space described by a Keel space (as serialised by the Rust core)."""
    kind = spec["type"]
    if kind == "box":
        dtype = np.dtype(spec["dtype"])
        shape = tuple(spec["shape"])
        # JSON has no infinities: the core writes unbounded directions as null.
        low = np.array([-np.inf if v is None else v for v in spec["low"]], dtype=np.float64).reshape(shape)
        high = np.array([np.inf if v is None else v for v in spec["high"]], dtype=np.float64).reshape(shape)
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


def _to_json_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(mapping: dict[str, Any] | None) -> str | None:
    """A config or options mapping as JSON (numpy arrays and scalars become lists and numbers)."""
    if not mapping:
        return None
    return json.dumps(mapping, default=_to_json_value)
