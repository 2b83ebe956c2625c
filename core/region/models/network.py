"""IP networks and the one allocation table IPAM writes (unique per network and address)."""
from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, str36, str64, str255
from core.region.models.base import ExternalMixin, OwnedMixin, ResourceMixin


class Network(ResourceMixin, OwnedMixin, ExternalMixin, Base):
    __tablename__ = "networks"

    wire_id: Mapped[str36] = mapped_column(ForeignKey("wires.id"), index=True)
    guest_ip_start: Mapped[str64]
    guest_ip_end: Mapped[str64]
    guest_ip_mask: Mapped[int] = mapped_column(Integer)
    guest_gateway: Mapped[str64] = mapped_column(default="")
    guest_dns: Mapped[str255] = mapped_column(default="")
    vlan_id: Mapped[int] = mapped_column(Integer, default=1)
    alloc_policy: Mapped[str64] = mapped_column(default="none")
    server_type: Mapped[str64] = mapped_column(default="guest")
    # integer forms of start/end: overlap checks and ordering without parsing every row
    ip_start_int: Mapped[int] = mapped_column(BigInteger, index=True)
    ip_end_int: Mapped[int] = mapped_column(BigInteger)


class IpAllocation(Base):
    """One address of one network held by something (a server nic, a reservation, an eip...).

    The unique (network_id, ip_int) constraint is what makes two concurrent allocations of the
    same address impossible: the loser's INSERT fails and it retries with the next address.
    """

    __tablename__ = "ip_allocations"
    __table_args__ = (
        UniqueConstraint("network_id", "ip_int", name="uq_ip_allocations_network_ip"),
        Index("ix_ip_allocations_owner", "owner_type", "owner_id"),
    )

    id: Mapped[str36] = mapped_column(primary_key=True)
    network_id: Mapped[str36] = mapped_column(ForeignKey("networks.id"))
    ip_addr: Mapped[str64]
    ip_int: Mapped[int] = mapped_column(BigInteger)
    owner_type: Mapped[str64]  # server | reserved | eip | host
    owner_id: Mapped[str36] = mapped_column(default="")
    mac: Mapped[str64] = mapped_column(default="")
    ifname: Mapped[str64] = mapped_column(default="")
    nic_index: Mapped[int] = mapped_column(Integer, default=0)
    notes: Mapped[str255] = mapped_column(default="")
    bw_limit: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # Mbps, a server nic's; 0: none
