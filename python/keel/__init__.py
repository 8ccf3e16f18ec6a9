"""Keel from Python: Rust environments behind a Gymnasium-compatible API.

The Gymnasium env classes, the vector env and the Stable-Baselines3 adapter come with the
Python-access work; today the package exposes the registry of the Rust core.
"""

from keel._core import __version__, env_ids

__all__ = ["__version__", "env_ids"]
