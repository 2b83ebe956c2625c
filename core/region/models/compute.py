"""Servers (guests) and disks."""
from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, Text, true
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, SoftDeleteMixin, str36, str64, str255
from core.region.models.base import ExternalMixin, OwnedMixin, ResourceMixin


class Server(ResourceMixin, OwnedMixin, ExternalMixin, SoftDeleteMixin, Base):
    __tablename__ = "servers"
    # list pages filter pending_deleted and order by (created_at, id): a page reads 20 index entries and
    # the total is counted from the index, instead of sorting / scanning every row
    __table_args__ = (Index("ix_servers_live_created_id", "pending_deleted", "created_at", "id"),
                      Index("ix_servers_tenant_live_created_id", "tenant_id", "pending_deleted", "created_at", "id"))

    vcpu_count: Mapped[int] = mapped_column(Integer, default=1)
    vmem_size: Mapped[int] = mapped_column(Integer, default=1024)
    hypervisor: Mapped[str64] = mapped_column(default="kvm")
    os_type: Mapped[str64] = mapped_column(default="")
    os_arch: Mapped[str64] = mapped_column(default="")
    host_id: Mapped[str36 | None] = mapped_column(ForeignKey("hosts.id"), index=True, default=None)
    zone_id: Mapped[str36 | None] = mapped_column(default=None)
    keypair_id: Mapped[str36 | None] = mapped_column(default=None)
    secgroup_id: Mapped[str36 | None] = mapped_column(default=None)
    power_status: Mapped[str64] = mapped_column(default="")
    # anti-spoofing on the guest's ports (Cloudpods' names): frames with another source IP / MAC drop
    src_ip_check: Mapped[bool] = mapped_column(default=True, server_default=true())
    src_mac_check: Mapped[bool] = mapped_column(default=True, server_default=true())
    # why the server is in its status when that is not self-evident (a guest its host lost, a host
    # offline, a failed action); cleared by the next status change (core.region.statemachine)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    auto_start: Mapped[bool] = mapped_column(default=False)
    # the task currently acting on the server: a second action while it is set is a 409
    active_task_id: Mapped[str36 | None] = mapped_column(default=None)
    # what create asked for (disks, nets, user data...), kept for rebuild and for the agent
    create_spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    user_data: Mapped[str] = mapped_column(Text, default="")
    # what the server holds and must give back exactly once: {"quota": {...}, "host": {...}}
    held: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Disk(ResourceMixin, OwnedMixin, ExternalMixin, SoftDeleteMixin, Base):
    __tablename__ = "disks"

    disk_size: Mapped[int] = mapped_column(Integer)
    disk_format: Mapped[str64] = mapped_column(default="qcow2")
    disk_type: Mapped[str64] = mapped_column(default="data")
    storage_id: Mapped[str36 | None] = mapped_column(ForeignKey("storages.id"), index=True, default=None)
    template_id: Mapped[str255] = mapped_column(default="")
    server_id: Mapped[str36 | None] = mapped_column(ForeignKey("servers.id"), index=True, default=None)
    disk_index: Mapped[int] = mapped_column(Integer, default=0)
    access_path: Mapped[str255] = mapped_column(default="")
    auto_delete: Mapped[bool] = mapped_column(default=True)
    active_task_id: Mapped[str36 | None] = mapped_column(default=None)
    held: Mapped[dict[str, Any]] = mapped_column(default=dict)
