"""Policy rules per service, registered at import (a static list: no scanning)."""
from __future__ import annotations

from core.keystone.policies import (
    identity,
    image,  # noqa: F401
)

__all__ = ["identity"]
