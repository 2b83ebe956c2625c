"""Database layer: typed declarative base, engines/sessions, Alembic migrations."""
from __future__ import annotations

from core.db.base import Base, SoftDeleteMixin, StandardMixin, new_hex_id, new_uuid, utcnow
from core.db.engine import Database, make_engine

__all__ = [
    "Base",
    "Database",
    "SoftDeleteMixin",
    "StandardMixin",
    "make_engine",
    "new_hex_id",
    "new_uuid",
    "utcnow",
]
