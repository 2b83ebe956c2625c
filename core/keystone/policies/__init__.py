"""Policy rules per service, registered at import (a static list: no scanning)."""
from __future__ import annotations

from core.keystone.policies import (
    identity,
    image,
    region,  # noqa: F401  (region rules)
    scheduler,
)

__all__ = ["identity", "image", "scheduler"]
