"""The real Helm library for the chart tests: helm-sdkpy, which `make install` adds (pip --ignore-requires-python)."""

from __future__ import annotations

import os
from types import ModuleType

import pytest


def helm_or_skip() -> ModuleType:
    """helm_sdkpy; a test module without it is skipped locally and fails under CI, where it must be installed."""
    try:
        import helm_sdkpy
    except ImportError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("helm-sdkpy is missing: `make install` adds it (pip --ignore-requires-python)",
                    allow_module_level=True)
    return helm_sdkpy
