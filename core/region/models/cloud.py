"""Cloud accounts, their cloud providers (sub-accounts) and the images cached in clouds.

A ``Cloudaccount`` holds how to reach a cloud: the provider's driver (drivers/registry.py), its
access URL, the (non-secret) account name and the secret, encrypted with the credential keys
(core/keystone/credkeys.py) and never returned by any API. Each account has one ``Cloudprovider``
per sub-account (one for AWS); every synced row carries ``manager_id`` = that cloudprovider and
``external_id`` = the cloud's id (core/region/models/base.py ExternalMixin).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, str36, str64, str255
from core.region.models.base import ExternalMixin, OwnedMixin, ResourceMixin


class Cloudaccount(ResourceMixin, OwnedMixin, Base):
    """``status``: init | connected | partial | unhealthy (with ``status_reason``);
    ``sync_status``: idle | queued | syncing."""

    __tablename__ = "cloudaccounts"

    provider: Mapped[str64] = mapped_column(default="")  # Cloudpods' brand name: Aws, Cloudpods, VMware
    driver: Mapped[str64] = mapped_column(default="")  # the drivers/registry.py name: aws, cloudpods, esxi
    access_url: Mapped[str255] = mapped_column(default="")
    account: Mapped[str255] = mapped_column(default="")  # access key id / user name: not a secret
    secret: Mapped[str] = mapped_column(Text, default="")  # encrypted JSON, never returned
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    sync_status: Mapped[str64] = mapped_column(default="idle")
    sync_interval_seconds: Mapped[int] = mapped_column(Integer, default=900)
    last_sync: Mapped[datetime | None] = mapped_column(default=None)
    last_sync_end_at: Mapped[datetime | None] = mapped_column(default=None)
    sync_task_id: Mapped[str36 | None] = mapped_column(default=None)
    # the last sync's report: per kind seen/created/updated/deleted/errors, and its duration
    sync_report: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Cloudprovider(ResourceMixin, OwnedMixin, Base):
    __tablename__ = "cloudproviders"

    cloudaccount_id: Mapped[str36] = mapped_column(ForeignKey("cloudaccounts.id"), index=True)
    provider: Mapped[str64] = mapped_column(default="")
    account: Mapped[str255] = mapped_column(default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    sync_status: Mapped[str64] = mapped_column(default="idle")
    last_sync: Mapped[datetime | None] = mapped_column(default=None)


class Cachedimage(ResourceMixin, OwnedMixin, ExternalMixin, Base):
    """An image as a cloud has it (an AMI): usable as ``--disk <external id or name>`` on that cloud."""

    __tablename__ = "cachedimages"

    size: Mapped[int] = mapped_column(Integer, default=0)  # MB
    os_type: Mapped[str64] = mapped_column(default="")
    image_type: Mapped[str64] = mapped_column(default="system")
