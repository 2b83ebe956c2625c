"""Image rows: the image, its converted sub-formats, and per-project byte quotas."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, StandardMixin, new_uuid, str36, str64, str255, utcnow

# Status machine (API.md §4): queued → saving → active; saving → killed on a failed upload;
# a queued/killed image may be uploaded again, an active one never is.
QUEUED, SAVING, ACTIVE, KILLED = "queued", "saving", "active", "killed"
STATUSES = (QUEUED, SAVING, ACTIVE, KILLED)
UPLOADABLE = (QUEUED, SAVING, KILLED)


class Image(StandardMixin, Base):
    __tablename__ = "images"
    __table_args__ = (Index("ix_images_tenant_name", "tenant_id", "name"),)

    name: Mapped[str255]
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str36] = mapped_column(default=QUEUED, index=True)
    disk_format: Mapped[str | None] = mapped_column(String(16), default=None)
    container_format: Mapped[str] = mapped_column(String(16), default="bare")
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    virtual_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    checksum: Mapped[str | None] = mapped_column(String(32), default=None)  # md5, Cloudpods' checksum
    os_hash_algo: Mapped[str | None] = mapped_column(String(16), default=None)
    os_hash_value: Mapped[str | None] = mapped_column(String(128), default=None)
    min_disk: Mapped[int] = mapped_column(Integer, default=0)  # MB (Cloudpods)
    min_ram: Mapped[int] = mapped_column(Integer, default=0)  # MB
    protected: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    is_public: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), index=True)
    tenant_id: Mapped[str64] = mapped_column(index=True)
    domain_id: Mapped[str64] = mapped_column(index=True)
    owner_user_id: Mapped[str64] = mapped_column(default="")
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    location: Mapped[str | None] = mapped_column(String(255), default=None)  # storage key when active
    # Upload bookkeeping: who holds the upload (request id) and the declared total size.
    upload_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    upload_total: Mapped[int | None] = mapped_column(BigInteger, default=None)
    fail_reason: Mapped[str] = mapped_column(Text, default="")

    __list_hidden__ = ("location", "upload_owner")


class ImageSubformat(Base):
    """A conversion of an active image to another disk format, made on request and kept."""

    __tablename__ = "image_subformats"
    __table_args__ = (UniqueConstraint("image_id", "format"),)

    id: Mapped[str36] = mapped_column(primary_key=True, default=new_uuid)
    image_id: Mapped[str36] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="converting")  # converting | active | failed
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    checksum: Mapped[str | None] = mapped_column(String(32), default=None)
    location: Mapped[str | None] = mapped_column(String(255), default=None)
    fail_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ImageQuota(Base):
    """Image bytes a project may hold; projects without a row get the configured default."""

    __tablename__ = "image_quotas"

    tenant_id: Mapped[str64] = mapped_column(primary_key=True)
    max_bytes: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
