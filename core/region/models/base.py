"""Column mixins shared by region resources (Cloudpods' common fields, API.md §4)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import StandardMixin, str64, str255


class ResourceMixin(StandardMixin):
    """id, name, description, status, created_at, updated_at, metadata."""

    name: Mapped[str255] = mapped_column(index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str64] = mapped_column(String(64), default="")
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)


class OwnedMixin:
    """Owned by a project (``tenant_id``) in a domain; ``is_public`` shares it with every project."""

    tenant_id: Mapped[str64] = mapped_column(index=True, default="")
    domain_id: Mapped[str64] = mapped_column(default="default")
    is_public: Mapped[bool] = mapped_column(default=False)


class ExternalMixin:
    """A row synced from a cloud: its id there and the cloudprovider it came through ("" / None
    for the rows of this cloud). The sync matches rows on (manager_id, external_id)."""

    external_id: Mapped[str255] = mapped_column(default="", server_default="", index=True)
    manager_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
