"""Cloud regions, zones, VPCs and wires: the system-owned infrastructure tree."""
from __future__ import annotations

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, str36, str64, str255
from core.region.models.base import ExternalMixin, ResourceMixin


class Cloudregion(ResourceMixin, ExternalMixin, Base):
    __tablename__ = "cloudregions"

    provider: Mapped[str64] = mapped_column(default="OneCloud")


class Zone(ResourceMixin, ExternalMixin, Base):
    __tablename__ = "zones"

    cloudregion_id: Mapped[str36] = mapped_column(ForeignKey("cloudregions.id"), index=True)
    location: Mapped[str255] = mapped_column(default="")


class Vpc(ResourceMixin, ExternalMixin, Base):
    __tablename__ = "vpcs"

    cloudregion_id: Mapped[str36] = mapped_column(ForeignKey("cloudregions.id"), index=True)
    cidr_block: Mapped[str255] = mapped_column(default="")
    is_default: Mapped[bool] = mapped_column(default=False)


class Wire(ResourceMixin, ExternalMixin, Base):
    __tablename__ = "wires"

    vpc_id: Mapped[str36] = mapped_column(ForeignKey("vpcs.id"), index=True)
    zone_id: Mapped[str36] = mapped_column(ForeignKey("zones.id"), index=True)
    bandwidth: Mapped[int] = mapped_column(Integer, default=1000)
    mtu: Mapped[int] = mapped_column(Integer, default=1500)
