"""Every task class by name: a static table (no scanning), imported lazily."""
from __future__ import annotations

from typing import Any

from core.loader import load

# name -> "module:Class", filled by each service that has tasks (core/region/__init__.py registers
# the region's): the engine knows no service. Static tables of strings, so the binary's hidden
# imports are found (packaging/pyinstaller/bundle_plan.py) and nothing is imported before use.
TASKS: dict[str, str] = {}
# tests register their own task classes here (name -> class)
EXTRA: dict[str, Any] = {}
_cache: dict[str, Any] = {}


def register_tasks(table: dict[str, str]) -> None:
    """Add a service's task classes by name (again with the same table: a no-op; a clash: a bug)."""
    for name, ref in table.items():
        if TASKS.setdefault(name, ref) != ref:
            raise ValueError(f"task {name} registered twice ({TASKS[name]} and {ref})")


def task_class(name: str) -> Any:
    cls = EXTRA.get(name) or _cache.get(name)
    if cls is None:
        ref = TASKS.get(name)
        if ref is None:
            raise KeyError(f"unknown task {name} (is its service's table registered? core.tasks.registry)")
        cls = _cache[name] = load(ref)
    return cls
