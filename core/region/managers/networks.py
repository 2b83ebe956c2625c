"""Networks (IP ranges on a wire) and reserved addresses."""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.api.listing import ListQuery
from core.errors import InputParameterError, NotEmptyError, ResourceNotFoundError
from core.keystone.policy import restrict
from core.region import ipam
from core.region.common import text_field
from core.region.managers._util import add_names, apply_update, names_by_id, unique_name
from core.region.models import IpAllocation, Network, Wire
from core.region.resource import Manager


class NetworkCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    description: str = ""
    wire: str | None = Field(default=None)
    wire_id: str | None = None
    guest_ip_start: str | None = None
    guest_ip_end: str | None = None
    guest_ip_mask: int | None = None
    guest_ip_prefix: str | None = None  # "10.0.0.0/24": start/end/mask from the prefix
    guest_gateway: str = ""
    guest_dns: str = ""
    vlan_id: int = Field(default=1, ge=1, le=4095)
    alloc_policy: str = "none"
    server_type: str = "guest"
    is_public: bool = True

    @model_validator(mode="after")
    def _prefix(self) -> NetworkCreate:
        if self.guest_ip_prefix and not self.guest_ip_start:
            import ipaddress

            try:
                net = ipaddress.IPv4Network(self.guest_ip_prefix, strict=False)
            except ValueError:
                raise ValueError(f"guest_ip_prefix {self.guest_ip_prefix!r} is not an IPv4 prefix") from None
            if net.prefixlen > 30:
                raise ValueError("guest_ip_prefix: need at least a /30")
            hosts = list(net.hosts()) if net.num_addresses <= 4 else None
            first = net.network_address + 1
            last = net.broadcast_address - 1
            if hosts is not None:
                first, last = hosts[0], hosts[-1]
            # the first usable address is the gateway unless one was given
            if not self.guest_gateway:
                self.guest_gateway = str(first)
                first += 1
            self.guest_ip_start, self.guest_ip_end, self.guest_ip_mask = str(first), str(last), net.prefixlen
        return self


class NetworkManager(Manager):
    keyword, plural, model = "network", "networks", Network
    owned, shareable = True, True
    contexts: ClassVar[dict[str, str]] = {"wires": "wire_id"}
    actions: ClassVar[dict[str, str]] = {"reserve-ip": "do_reserve_ip", "release-reserved-ip": "do_release_ip"}
    specs: ClassVar[dict[str, str]] = {"addresses": "spec_addresses"}
    columns = ("id", "name", "description", "status", "created_at", "updated_at", "meta", "tenant_id",
               "domain_id", "is_public", "wire_id", "guest_ip_start", "guest_ip_end", "guest_ip_mask",
               "guest_gateway", "guest_dns", "vlan_id", "alloc_policy", "server_type", "external_id", "manager_id")

    def list_filter(self, session: Session, cred: Credential, stmt: Any, q: ListQuery) -> Any:
        """``?zone=`` / ``?vpc=``: networks on wires of that zone or VPC (Cloudpods' network list)."""
        for key, col in (("zone", "zone_id"), ("vpc", "vpc_id")):
            ids = self.ref_values(session, cred, q, key, col)
            if ids:
                stmt = stmt.where(Network.wire_id.in_(select(Wire.id).where(getattr(Wire, col).in_(ids))))
        return stmt

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        from core.region.common import parse
        from core.region.registry import get_manager

        data = parse(NetworkCreate, body)
        name = unique_name(session, Network, data.name)
        wire_ref = (ctx[1] if ctx else None) or data.wire or data.wire_id
        if not wire_ref:
            raise InputParameterError("wire: required")
        wire = get_manager("wires").lookup(session, cred, wire_ref)
        for f in ("guest_ip_start", "guest_ip_end", "guest_ip_mask"):
            if getattr(data, f) is None:
                raise InputParameterError(f"{f}: required (or give guest_ip_prefix)")
        assert data.guest_ip_start and data.guest_ip_end and data.guest_ip_mask is not None
        if data.alloc_policy not in ipam.ALLOC_POLICIES:
            raise InputParameterError(f"alloc_policy: must be one of {', '.join(ipam.ALLOC_POLICIES)}")
        if data.server_type not in ("guest", "baremetal", "pxe", "ipmi", "eip"):
            raise InputParameterError("server_type: must be guest, baremetal, pxe, ipmi or eip")
        start, end = ipam.check_range(data.guest_ip_start, data.guest_ip_end, data.guest_ip_mask,
                                      data.guest_gateway or None)
        other = ipam.overlapping(session, start, end)
        if other is not None:
            raise InputParameterError(f"range {data.guest_ip_start}-{data.guest_ip_end} overlaps network "
                                      f"{other.name} ({other.guest_ip_start}-{other.guest_ip_end})")
        row = Network(name=name, description=data.description, wire_id=wire.id,
                      guest_ip_start=ipam.ip_str(start), guest_ip_end=ipam.ip_str(end),
                      guest_ip_mask=data.guest_ip_mask, guest_gateway=data.guest_gateway, guest_dns=data.guest_dns,
                      vlan_id=data.vlan_id, alloc_policy=data.alloc_policy, server_type=data.server_type,
                      ip_start_int=start, ip_end_int=end, status="available", is_public=data.is_public,
                      tenant_id=cred.project_id or "", domain_id=cred.owner_domain_id or "default")
        session.add(row)
        self.audit(session, cred, "create", row)
        return [row]

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        if "name" in body:
            unique_name(session, Network, body["name"], exclude_id=row.id)
        if "alloc_policy" in body and body["alloc_policy"] not in ipam.ALLOC_POLICIES:
            raise InputParameterError(f"alloc_policy: must be one of {', '.join(ipam.ALLOC_POLICIES)}")
        rng = {k: body.get(k, getattr(row, k)) for k in ("guest_ip_start", "guest_ip_end", "guest_ip_mask",
                                                         "guest_gateway")}
        if any(k in body for k in rng):
            start, end = ipam.check_range(str(rng["guest_ip_start"]), str(rng["guest_ip_end"]),
                                          rng["guest_ip_mask"], rng["guest_gateway"] or None)
            other = ipam.overlapping(session, start, end, exclude_id=row.id)
            if other is not None:
                raise InputParameterError(f"range overlaps network {other.name}")
            outside = session.scalar(select(IpAllocation.ip_addr).where(
                IpAllocation.network_id == row.id, (IpAllocation.ip_int < start) | (IpAllocation.ip_int > end)))
            if outside:
                raise InputParameterError(f"address {outside} is in use outside the new range")
            row.ip_start_int, row.ip_end_int = start, end
            body = dict(body, guest_ip_start=ipam.ip_str(start), guest_ip_end=ipam.ip_str(end))
        apply_update(row, body, ("name", "description", "guest_ip_start", "guest_ip_end", "guest_ip_mask",
                                 "guest_gateway", "guest_dns", "alloc_policy", "is_public", "vlan_id"))
        return row

    def validate_delete(self, session: Session, row: Any) -> None:
        n = ipam.used_counts(session, [row.id]).get(row.id, 0)
        if n:
            raise NotEmptyError(f"network {row.name} still has {n} allocated address(es)")

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        add_names(items, "wire_id", names_by_id(session, Wire, [r.wire_id for r in rows]), "wire")
        used = ipam.used_counts(session, [r.id for r in rows])
        for r, it in zip(rows, items, strict=True):
            it["ports"] = ipam.size_of(r)
            it["ports_used"] = used.get(r.id, 0)
            it["free_ips"] = it["ports"] - it["ports_used"]

    # ---- reserved addresses ------------------------------------------------------------------
    def do_reserve_ip(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> dict[str, Any]:
        ips = body.get("ips") or ([body["ip"]] if body.get("ip") else [])
        if not isinstance(ips, list) or not ips:
            raise InputParameterError("ips: give the addresses to reserve")
        notes = text_field(body, "notes")[:255]
        out = [ipam.allocate(session, row, "reserved", "", address=str(ip), notes=notes).ip_addr for ip in ips]
        return {"network": self.to_dict(session, row), "reserved": out}

    def do_release_ip(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        ip = body.get("ip")
        if not isinstance(ip, str):
            raise InputParameterError("ip: required")
        hit = session.scalar(select(IpAllocation).where(IpAllocation.network_id == row.id,
                                                        IpAllocation.ip_int == ipam.ip_int(ip, "ip"),
                                                        IpAllocation.owner_type == "reserved"))
        if hit is None:
            raise ResourceNotFoundError(f"{ip} is not reserved in network {row.name}")
        session.delete(hit)

    def spec_addresses(self, session: Session, cred: Credential, row: Any, q: ListQuery) -> dict[str, Any]:
        rows = session.scalars(select(IpAllocation).where(IpAllocation.network_id == row.id)
                               .order_by(IpAllocation.ip_int))
        return {"addresses": [{"ip_addr": a.ip_addr, "owner_type": a.owner_type, "owner_id": a.owner_id,
                               "mac": a.mac, "notes": a.notes} for a in rows]}


class ReservedIpManager(Manager):
    """``/reservedips``: the reserved rows of ip_allocations (list/delete)."""

    keyword, plural, model = "reservedip", "reservedips", IpAllocation
    searchable = ("ip_addr",)
    contexts: ClassVar[dict[str, str]] = {"networks": "network_id"}
    columns = ("id", "network_id", "ip_addr", "notes")

    def base_stmt(self) -> Any:
        return select(IpAllocation).where(IpAllocation.owner_type == "reserved")

    def visible(self, stmt: Any, cred: Credential, scope: str | None = None) -> Any:
        """A reservation belongs to its network's project: only that project (and those who
        reach it: its domain's admins, the system) sees it. A shared network's reservations
        stay its owner's: their notes are the owner's business."""
        own = restrict(select(Network.id), cred, Network, scope)
        return stmt.where(IpAllocation.network_id.in_(own))

    def fetch(self, session: Session, cred: Credential, ident: str, *, lock: bool = False,
              pending: bool = True) -> Any:
        row = session.scalar(self.visible(self.base_stmt(), cred).where(IpAllocation.id == ident))
        if row is None:
            raise ResourceNotFoundError(f"reservedip {ident} not found")
        return row

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        from core.region.registry import get_manager

        net = get_manager("networks").lookup(session, cred, str(body.get("network") or body.get("network_id") or ""))
        ip = body.get("ip") or body.get("ip_addr")
        if not isinstance(ip, str):
            raise InputParameterError("ip: required")
        return [ipam.allocate(session, net, "reserved", "", address=ip, notes=text_field(body, "notes")[:255])]
