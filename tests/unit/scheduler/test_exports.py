"""Each scheduler package's ``__all__`` names exactly what it exports (STYLE guideline 15)."""
from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("module", ["core.scheduler", "core.scheduler.filters", "core.scheduler.scorers"])
def test_all_is_importable_and_sorted(module: str) -> None:
    mod = importlib.import_module(module)
    names = mod.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(mod, name), f"{module}.{name} is in __all__ but missing"
