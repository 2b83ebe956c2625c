"""core.loader: the one "module:attr" loader, and the errors callers tell apart."""
from __future__ import annotations

import pytest

from core.loader import BadReference, load, split


def test_load_returns_the_attribute() -> None:
    import core.errors

    assert load("core.errors:ResourceNotFoundError") is core.errors.ResourceNotFoundError


@pytest.mark.parametrize("ref", ["core.errors", ":x", "core.errors:", ""])
def test_malformed_reference(ref: str) -> None:
    with pytest.raises(BadReference, match="module:attr"):
        split(ref)


def test_missing_attribute_and_missing_module() -> None:
    with pytest.raises(BadReference, match="core.errors has no Nope"):
        load("core.errors:Nope")
    with pytest.raises(ModuleNotFoundError) as e:
        load("core.no_such_module_xyz:x")
    assert e.value.name == "core.no_such_module_xyz"  # the driver registry tells a missing SDK by this
