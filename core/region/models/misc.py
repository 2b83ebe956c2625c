"""Keypairs, security groups (+ rules), EIPs, snapshots and per-project quotas."""
from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, StandardMixin, str36, str64, str255
from core.region.models.base import ExternalMixin, OwnedMixin, ResourceMixin


class Keypair(ResourceMixin, OwnedMixin, Base):
    __tablename__ = "keypairs"

    scheme: Mapped[str64] = mapped_column(default="RSA")
    fingerprint: Mapped[str255] = mapped_column(default="")
    public_key: Mapped[str] = mapped_column(Text)


class Secgroup(ResourceMixin, OwnedMixin, ExternalMixin, Base):
    __tablename__ = "secgroups"


class SecgroupRule(StandardMixin, Base):
    __tablename__ = "secgrouprules"

    secgroup_id: Mapped[str36] = mapped_column(ForeignKey("secgroups.id"), index=True)
    direction: Mapped[str64] = mapped_column(default="in")
    action: Mapped[str64] = mapped_column(default="allow")
    protocol: Mapped[str64] = mapped_column(default="any")
    ports: Mapped[str255] = mapped_column(default="")
    cidr: Mapped[str64] = mapped_column(default="")
    priority: Mapped[int] = mapped_column(Integer, default=1)
    description: Mapped[str255] = mapped_column(default="")
    # Cloudpods' peer_secgroup_id: the rule matches the addresses of that group's guests (not cidr)
    peer_secgroup_id: Mapped[str36 | None] = mapped_column(default=None)


class GuestSecgroup(StandardMixin, Base):
    """A server in a security group (Cloudpods' guestsecgroups joint); a server may be in several."""

    __tablename__ = "guestsecgroups"
    __table_args__ = (UniqueConstraint("guest_id", "secgroup_id", name="uq_guestsecgroups_guest_secgroup"),)

    guest_id: Mapped[str36] = mapped_column(index=True)
    secgroup_id: Mapped[str36] = mapped_column(ForeignKey("secgroups.id"), index=True)


class Eip(ResourceMixin, OwnedMixin, ExternalMixin, Base):
    __tablename__ = "eips"

    network_id: Mapped[str36 | None] = mapped_column(ForeignKey("networks.id"), default=None)
    ip_addr: Mapped[str64] = mapped_column(default="")
    bandwidth: Mapped[int] = mapped_column(Integer, default=0)
    associate_type: Mapped[str64] = mapped_column(default="")
    associate_id: Mapped[str36 | None] = mapped_column(default=None)
    cloudregion_id: Mapped[str36 | None] = mapped_column(default=None)  # a cloud's eip: its region
    # Cloudpods' charge_type (traffic|bandwidth: billing only here) and auto_dellocate (released when
    # dissociated, e.g. with its server's delete)
    charge_type: Mapped[str64] = mapped_column(default="bandwidth", server_default="bandwidth")
    auto_dellocate: Mapped[bool] = mapped_column(default=False, server_default=false())


class Snapshot(ResourceMixin, OwnedMixin, Base):
    __tablename__ = "snapshots"

    disk_id: Mapped[str36] = mapped_column(ForeignKey("disks.id"), index=True)
    storage_id: Mapped[str36 | None] = mapped_column(default=None)
    size: Mapped[int] = mapped_column(Integer, default=0)
    # taken with the server's other disks as one instance snapshot (None: a disk snapshot of its own)
    instance_snapshot_id: Mapped[str36 | None] = mapped_column(default=None, index=True)


class InstanceSnapshot(ResourceMixin, OwnedMixin, Base):
    """All disks of a server at one instant (Cloudpods' instance_snapshots): one disk snapshot per
    disk (``snapshots.instance_snapshot_id``) plus the server's shape, so a server can be cloned
    from it (``server-create --instance-snapshot``)."""

    __tablename__ = "instance_snapshots"

    guest_id: Mapped[str36] = mapped_column(index=True)
    # what a clone is made of: vcpu_count, vmem_size, os_type, os_arch, hypervisor, host_id, keypair_id,
    # nets [{network}], disks [{index, size, disk_type, format, image_id, storage_id, disk_id, snapshot_id}]
    server_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    size: Mapped[int] = mapped_column(Integer, default=0)  # MB: the disks' sizes together


class Quota(Base):
    """Limits and usage of one project in one row, so a reservation is one conditional UPDATE."""

    __tablename__ = "quotas"

    tenant_id: Mapped[str64] = mapped_column(primary_key=True)
    domain_id: Mapped[str64] = mapped_column(default="default")
    cpu: Mapped[int] = mapped_column(BigInteger)
    memory: Mapped[int] = mapped_column(BigInteger)
    storage: Mapped[int] = mapped_column(BigInteger)
    servers: Mapped[int] = mapped_column(BigInteger)
    ips: Mapped[int] = mapped_column(BigInteger)
    images: Mapped[int] = mapped_column(BigInteger)
    snapshot: Mapped[int] = mapped_column(BigInteger, default=100, server_default="100")  # disk snapshots
    eip: Mapped[int] = mapped_column(BigInteger, default=10, server_default="10")  # EIPs on eip networks
    used_cpu: Mapped[int] = mapped_column(BigInteger, default=0)
    used_memory: Mapped[int] = mapped_column(BigInteger, default=0)
    used_storage: Mapped[int] = mapped_column(BigInteger, default=0)
    used_servers: Mapped[int] = mapped_column(BigInteger, default=0)
    used_ips: Mapped[int] = mapped_column(BigInteger, default=0)
    used_images: Mapped[int] = mapped_column(BigInteger, default=0)
    used_snapshot: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    used_eip: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class DomainQuota(Base):
    """A domain's own cap on what its projects use together (Cloudpods' domain-level quota); -1 is
    no cap of its own, leaving the sum of its projects' limits. Only domains given a cap have a row."""

    __tablename__ = "domain_quotas"

    domain_id: Mapped[str64] = mapped_column(primary_key=True)
    cpu: Mapped[int] = mapped_column(BigInteger, default=-1)
    memory: Mapped[int] = mapped_column(BigInteger, default=-1)
    storage: Mapped[int] = mapped_column(BigInteger, default=-1)
    servers: Mapped[int] = mapped_column(BigInteger, default=-1)
    ips: Mapped[int] = mapped_column(BigInteger, default=-1)
    images: Mapped[int] = mapped_column(BigInteger, default=-1)
    snapshot: Mapped[int] = mapped_column(BigInteger, default=-1)
    eip: Mapped[int] = mapped_column(BigInteger, default=-1, server_default="-1")
