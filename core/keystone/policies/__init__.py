"""Policy rules per service, registered at import (a static list: no scanning)."""
from __future__ import annotations

from core.keystone.policies import identity, image
from core.scheduler import policies as scheduler
from core.keystone.policies import region  # noqa: E402,F401  (region rules)

__all__ = ["identity", "image", "scheduler"]
