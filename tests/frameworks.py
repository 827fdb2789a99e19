"""Framework imports for tests: optional locally, required in CI.

Under ``CI=true`` a missing framework must fail the run, never silently skip an adapter's tests.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require(module: str) -> ModuleType:
    """Import ``module``; skip the calling test module if it is missing, unless CI=true (then fail)."""
    if os.environ.get("CI", "").lower() == "true":
        return importlib.import_module(module)
    return pytest.importorskip(module)
