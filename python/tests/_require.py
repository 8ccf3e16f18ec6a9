"""One rule for tests that need installed data or a build feature: they skip where it is absent,
and fail where the test command requires it (``scripts/test.sh`` sets the ``KEEL_REQUIRE_*``
variables to 1 for cargo and pytest alike)."""

import os

import pytest


def skip_or_fail(variable: str, reason: str, *, module: bool = False):
    """Skips the test (or the whole module) for ``reason``; fails instead where ``variable`` is 1."""
    if os.environ.get(variable) == "1":
        pytest.fail(f"{reason} (required here: {variable}=1)", pytrace=False)
    pytest.skip(reason, allow_module_level=module)
