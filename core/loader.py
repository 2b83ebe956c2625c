"""The one loader of ``"package.module:attr"`` references (stdlib only, cheap to import).

Every place that imports code by name (climc/ocadm commands, routers, background services,
periodic jobs, task classes, region managers, drivers) keeps its references in a module-level
table and resolves them here. Module-level tables matter: the binary's bundle plan
(packaging/pyinstaller/bundle_plan.py) reads them to find hidden imports, and a unit test fails on a
"module:attr" string anywhere else.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["BadReference", "load", "split"]


class BadReference(ImportError):
    """A reference that is not "module:attr", or whose module lacks the attribute."""


def split(ref: str) -> tuple[str, str]:
    """``"a.b:c"`` -> ``("a.b", "c")``; anything else is a BadReference."""
    mod, sep, attr = ref.partition(":")
    if not sep or not mod or not attr:
        raise BadReference(f"{ref!r} is not a \"module:attr\" reference")
    return mod, attr


def load(ref: str) -> Any:
    """Import the module a reference names and return its attribute.

    A missing module raises ModuleNotFoundError unchanged (callers such as the driver registry tell a
    missing SDK from a missing module by ``exc.name``); a missing attribute raises BadReference.
    """
    mod, attr = split(ref)
    module = importlib.import_module(mod)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise BadReference(f"{mod} has no {attr}") from None
