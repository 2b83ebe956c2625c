"""Hosts, storages and the host<->storage / host<->wire joints."""
from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, StandardMixin, str36, str64, str255
from core.region.models.base import ExternalMixin, ResourceMixin


class Host(ResourceMixin, ExternalMixin, Base):
    __tablename__ = "hosts"

    zone_id: Mapped[str36] = mapped_column(ForeignKey("zones.id"), index=True)
    host_type: Mapped[str64] = mapped_column(default="hypervisor")
    enabled: Mapped[bool] = mapped_column(default=False)
    host_status: Mapped[str64] = mapped_column(default="offline")
    access_ip: Mapped[str64] = mapped_column(default="")
    access_mac: Mapped[str64] = mapped_column(default="", index=True)
    cpu_arch: Mapped[str64] = mapped_column(default="x86_64")
    cpu_count: Mapped[int] = mapped_column(Integer, default=0)
    cpu_reserved: Mapped[int] = mapped_column(Integer, default=0)
    cpu_cmtbound: Mapped[float] = mapped_column(Float, default=8.0)
    mem_size: Mapped[int] = mapped_column(Integer, default=0)
    mem_reserved: Mapped[int] = mapped_column(Integer, default=0)
    mem_cmtbound: Mapped[float] = mapped_column(Float, default=1.0)
    storage_size: Mapped[int] = mapped_column(BigInteger, default=0)
    # committed by placements (scheduler claims) — guarded by ``generation``
    cpu_used: Mapped[int] = mapped_column(Integer, default=0)
    mem_used: Mapped[int] = mapped_column(Integer, default=0)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    sys_info: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[str64] = mapped_column(default="")
    # the host contract: the driver its agent (or the controller's executor) runs, and what it can do
    driver: Mapped[str64] = mapped_column(default="kvm", server_default="kvm")
    driver_version: Mapped[str64] = mapped_column(default="", server_default="")
    capabilities: Mapped[list[Any]] = mapped_column(default=list)
    # bumped in the transaction of every change to what this host's guests' security groups say;
    # the agent's long poll returns when it differs from the one the agent applied (core/region/secgroups.py)
    secgroup_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # who runs the host's work items: its agent (pulls them over HTTP) or the controller's executor
    # (core/hostapi/executor.py); an executor host's driver config, encrypted (never returned)
    target: Mapped[str64] = mapped_column(default="agent", server_default="agent")
    driver_config: Mapped[str] = mapped_column(Text, default="")
    last_ping_at: Mapped[datetime | None] = mapped_column(default=None)
    is_maintenance: Mapped[bool] = mapped_column(default=False)



# the hosts table as a Table (SQLAlchemy types __table__ as a FromClause): what the scheduler's
# claims and the capacity UPDATEs take
HOST_TABLE = cast(Table, Host.__table__)

class Storage(ResourceMixin, ExternalMixin, Base):
    __tablename__ = "storages"

    zone_id: Mapped[str36] = mapped_column(ForeignKey("zones.id"), index=True)
    storage_type: Mapped[str64] = mapped_column(default="local")
    medium_type: Mapped[str64] = mapped_column(default="ssd")
    capacity: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    cmtbound: Mapped[float] = mapped_column(Float, default=1.0)
    used_capacity: Mapped[int] = mapped_column(BigInteger, default=0)
    enabled: Mapped[bool] = mapped_column(default=True)
    storage_conf: Mapped[dict[str, Any]] = mapped_column(default=dict)


class HostStorage(StandardMixin, Base):
    __tablename__ = "hoststorages"

    host_id: Mapped[str36] = mapped_column(ForeignKey("hosts.id"), index=True)
    storage_id: Mapped[str36] = mapped_column(ForeignKey("storages.id"), index=True)
    mount_point: Mapped[str255] = mapped_column(default="")


class HostWire(StandardMixin, Base):
    __tablename__ = "hostwires"

    host_id: Mapped[str36] = mapped_column(ForeignKey("hosts.id"), index=True)
    wire_id: Mapped[str36] = mapped_column(ForeignKey("wires.id"), index=True)
    bridge: Mapped[str64] = mapped_column(default="")
    interface: Mapped[str64] = mapped_column(default="")
    mac_addr: Mapped[str64] = mapped_column(default="")
