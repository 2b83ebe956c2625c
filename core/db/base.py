"""Declarative base and the standard column mixins every model uses."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from sqlalchemy import JSON, Boolean, DateTime, MetaData, String, TypeDecorator, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names: SQLite, PostgreSQL and MariaDB must agree for migrations.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


_ISO_UTC = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"


def iso(dt: datetime | None) -> str | None:
    """The one timestamp format on the wire: UTC, microseconds, ``Z`` (Cloudpods' and Keystone's)."""
    if dt is None:
        return None
    if dt.tzinfo is UTC:  # what the database and utcnow() give: formatted directly, at half the cost
        return _ISO_UTC % (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond)
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_uuid() -> str:
    return str(uuid.uuid4())


def new_hex_id() -> str:
    """Keystone-style 32 hex character id."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always returns aware datetimes (SQLite and MariaDB drop the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        # MariaDB's DATETIME keeps whole seconds unless asked for more; token revocation
        # ("issued before the password change") compares sub-second times
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None) if dialect.name != "postgresql" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


str36 = Annotated[str, 36]
str64 = Annotated[str, 64]
str128 = Annotated[str, 128]
str255 = Annotated[str, 255]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
        str36: String(36),
        str64: String(64),
        str128: String(128),
        str255: String(255),
    }


class StandardMixin:
    """id (UUID4 string), created_at, updated_at."""

    id: Mapped[str36] = mapped_column(primary_key=True, default=new_uuid)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SoftDeleteMixin:
    """Recycle-bin support: rows stay until purged."""

    pending_deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    pending_deleted_at: Mapped[datetime | None] = mapped_column(default=None)
