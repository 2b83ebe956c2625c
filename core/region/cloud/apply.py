"""Cloud objects (drivers.base value objects) -> region rows, one page at a time.

Every row the sync writes carries ``manager_id`` (the cloudprovider) and ``external_id`` (the
cloud's id). ``setf`` writes a field only when its value changed, so a sync of an unchanged cloud
issues no UPDATE. Owned rows (servers, disks, networks, secgroups, eips, cached images) belong to
the account's project; infrastructure rows (regions, zones, vpcs, wires, hosts, storages) are the
system's. Each synced zone gets an executor host (``target=executor``, the account's driver) and
a storage, so server verbs go through the host contract like any host's.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.host_protocol import POWER_STATUS, guest_state, server_status
from core.region.cloud import hosts as cloud_hosts
from core.region.cloud.rows import created, setf, updated
from core.region.models import (
    Cachedimage,
    Cloudregion,
    Disk,
    Eip,
    GuestSecgroup,
    Host,
    HostStorage,
    HostWire,
    IpAllocation,
    Network,
    Secgroup,
    SecgroupRule,
    Server,
    Storage,
    Vpc,
    Wire,
    Zone,
)
from drivers.base import CloudStatus, ProviderCapability, imported_server_id

ErrorFn = Callable[[str, str], None]

MODELS: dict[str, Any] = {
    "cloudregions": Cloudregion, "zones": Zone, "vpcs": Vpc, "networks": Network, "secgroups": Secgroup,
    "cachedimages": Cachedimage, "servers": Server, "disks": Disk, "eips": Eip,
    "wires": Wire, "storages": Storage, "hosts": Host,
}
DISK_STATUS = {CloudStatus.AVAILABLE: "ready", CloudStatus.IN_USE: "ready", CloudStatus.CREATING: "allocating",
               CloudStatus.DELETING: "deleting", CloudStatus.ERROR: "alloc_failed", CloudStatus.UNKNOWN: "unknown"}
IMAGE_STATUS = {CloudStatus.AVAILABLE: "active", CloudStatus.CREATING: "saving", CloudStatus.ERROR: "killed",
                CloudStatus.DELETING: "deleted", CloudStatus.UNKNOWN: "unknown"}
INFRA_STATUS = {CloudStatus.AVAILABLE: "available", CloudStatus.CREATING: "pending", CloudStatus.UNKNOWN: "unknown"}


@dataclass
class Context:
    """One sync's fixed facts: the account, its provider row, and its driver's host facts."""

    account_id: str
    account_name: str
    manager_id: str
    tenant_id: str
    domain_id: str
    provider: str
    driver: str
    host_config: dict[str, Any]  # the account's config for its zone hosts (secret included; encrypted there)
    ids: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> external id -> row id
    zone_rows: dict[tuple[str, str], str | None] = field(default_factory=dict)  # (table, zone id) -> host/storage
    ips: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # server id -> (network id, address)
    occupied: set[tuple[str, int]] = field(default_factory=set)  # (network id, address) held here
    unlinked: set[str] | None = None  # servers with disks not linked to a volume (None: not preloaded)
    lists_hosts: bool = False  # the provider lists its hosts (ProviderCapability.HOSTS): no zone hosts
    wire_bridges: dict[str, str] = field(default_factory=dict)  # wire external id -> bridge (this sync)
    listed_at: datetime | None = None  # when the cloud's listing of the page being applied began

    @classmethod
    def of(cls, acct: Any, prov: Any) -> Context:
        from core.region.cloud.config import account_config

        return cls(account_id=acct.id, account_name=acct.name, manager_id=prov.id, tenant_id=acct.tenant_id,
                   domain_id=acct.domain_id, provider=acct.provider, driver=acct.driver,
                   host_config=account_config(acct, manager_id=prov.id), lists_hosts=lists_hosts(acct.driver))

    def id_of(self, session: Session, kind: str, external_id: str) -> str | None:
        if not external_id:
            return None
        table = self.ids.get(kind)
        if table is None:
            model = MODELS[kind]
            table = self.ids[kind] = dict(session.execute(
                select(model.external_id, model.id).where(model.manager_id == self.manager_id)).tuples().all())
        return table.get(external_id)

    def forget(self) -> None:
        self.ids.clear()
        self.zone_rows.clear()
        self.ips.clear()
        self.occupied.clear()
        self.unlinked = None

    def zone_row(self, session: Session, model: Any, zone_id: str | None) -> str | None:
        """The id of this provider's host (or storage) of a zone (cached for the sync)."""
        if not zone_id:
            return None
        key = (model.__tablename__, zone_id)
        if key not in self.zone_rows:
            self.zone_rows[key] = session.scalar(select(model.id).where(model.manager_id == self.manager_id,
                                                                       model.zone_id == zone_id).limit(1))
        return self.zone_rows[key]

    def preload_ips(self, session: Session, server_ids: list[str], items: list[Any]) -> None:
        """The addresses the page's servers hold, and which of the page's addresses anyone holds
        here: two queries per page instead of some per server."""
        from core.region import ipam

        self.ips = {sid: set() for sid in server_ids}
        if server_ids:
            for sid, net, ip in session.execute(select(IpAllocation.owner_id, IpAllocation.network_id,
                                                       IpAllocation.ip_addr).where(
                    IpAllocation.owner_type == "server", IpAllocation.owner_id.in_(server_ids))).tuples():
                self.ips[sid].add((net, ip))
        wanted = {(self.id_of(session, "networks", sub), ipam.ip_int(ip)) for i in items for sub, ip in i.private_ips}
        nets = {n for n, _ in wanted if n}
        ints = {i for n, i in wanted if n}
        self.occupied = set(session.execute(select(IpAllocation.network_id, IpAllocation.ip_int).where(
            IpAllocation.network_id.in_(nets), IpAllocation.ip_int.in_(ints))).tuples()) if nets else set()

    def preload_unlinked(self, session: Session, instance_ids: list[str]) -> None:
        """Servers of the page's volumes that have disks not yet linked to a volume (made here)."""
        sids = [s for s in (self.id_of(session, "servers", i) for i in instance_ids) if s]
        self.unlinked = set(session.scalars(select(Disk.server_id).where(
            Disk.server_id.in_(sids), Disk.external_id == ""))) if sids else set()

    def remember(self, kind: str, external_id: str, row_id: str) -> None:
        self.ids.setdefault(kind, {})[external_id] = row_id

    def owner(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "domain_id": self.domain_id}

    def infra_name(self, name: str) -> str:
        return f"{self.account_name}-{name}"[:255]


def lists_hosts(driver: str) -> bool:
    """Whether the driver's provider lists its own hosts (ProviderCapability.HOSTS)."""
    from drivers.registry import get_driver

    try:
        caps = getattr(get_driver(driver), "provider_capabilities", ())
    except Exception:  # a missing SDK: the sync reports that on its own
        return False
    return ProviderCapability.HOSTS in caps


def apply_page(session: Session, ctx: Context, kind: str, items: list[Any], seen: set[str],
               stats: dict[str, Any], error: ErrorFn) -> None:
    """Apply one page: all of it in one savepoint (the fast path); if anything in it fails, again
    object by object, each in its own savepoint, so one bad object costs only itself."""
    for item in items:
        seen.add(item.external_id)  # seen even if applying it fails: it exists, it must not be deleted
    stats["seen"] += len(items)
    try:
        with session.begin_nested():
            outcomes = _apply_all(session, ctx, kind, items)
            session.flush()
    except Exception:  # which object it was is found below
        ctx.forget()  # ids remembered inside the rolled-back savepoint are not in the database
        outcomes = []
        for item in items:
            try:
                with session.begin_nested():
                    outcomes += _apply_all(session, ctx, kind, [item])
                    session.flush()
            except Exception as exc:
                ctx.forget()
                error(kind, f"{item.external_id}: {getattr(exc, 'details', None) or exc}")
    for outcome in outcomes:
        if outcome:
            stats[outcome] += 1


def _apply_all(session: Session, ctx: Context, kind: str, items: list[Any]) -> list[str | None]:
    model = MODELS[kind]
    fn = APPLIERS[kind]
    exts = [i.external_id for i in items]
    rows = {r.external_id: r for r in session.scalars(
        select(model).where(model.manager_id == ctx.manager_id, model.external_id.in_(exts)))} if exts else {}
    if kind == "servers":
        ctx.preload_ips(session, [r.id for r in rows.values()], items)
    elif kind == "disks":
        ctx.preload_unlinked(session, [i.instance_id for i in items if i.instance_id])
    return [fn(session, ctx, item, rows.get(item.external_id)) for item in items]


# ---- per kind -----------------------------------------------------------------------------------------
def _region(session: Session, ctx: Context, o: Any, row: Cloudregion | None) -> str | None:
    status = INFRA_STATUS.get(o.status, "unknown")
    if row is None:
        return created(session, ctx, "cloudregions", Cloudregion(
            name=ctx.infra_name(o.name), external_id=o.external_id, provider=ctx.provider, status=status))
    return updated(setf(row, status=status, provider=ctx.provider))


def _zone(session: Session, ctx: Context, o: Any, row: Zone | None) -> str | None:
    region_id = ctx.id_of(session, "cloudregions", o.region_id)
    if region_id is None:
        raise ValueError(f"its region {o.region_id} was not synced")
    status = "enable" if o.status is CloudStatus.AVAILABLE else "disable"
    if row is None:
        row = Zone(name=ctx.infra_name(o.name), external_id=o.external_id, cloudregion_id=region_id, status=status)
        out: str | None = created(session, ctx, "zones", row)
    else:
        out = updated(setf(row, cloudregion_id=region_id, status=status))
    if not ctx.lists_hosts:
        _zone_host(session, ctx, row, o.region_id)
    return out


def _zone_host(session: Session, ctx: Context, zone: Zone, region: str) -> None:
    """The zone's executor host (the account's driver, its config encrypted) and its storage."""
    from core.region import hosted

    config = {**ctx.host_config, "region": region, "zone": zone.external_id}
    host = session.scalar(select(Host).where(Host.manager_id == ctx.manager_id, Host.zone_id == zone.id))
    if host is None:
        from drivers.registry import get_driver

        cls = get_driver(ctx.driver)
        host = Host(name=zone.name, external_id=zone.external_id, manager_id=ctx.manager_id,
                    zone_id=zone.id, host_type=ctx.driver, target="executor", driver=ctx.driver,
                    driver_version=str(getattr(cls, "version", "") or ""),
                    capabilities=sorted(c.value for c in getattr(cls, "capabilities", ())),
                    driver_config=hosted.encrypt_config(config), status="running", host_status="online",
                    enabled=True, last_ping_at=utcnow(), cpu_count=100_000, mem_size=1 << 30, cpu_cmtbound=1.0,
                    mem_cmtbound=1.0, storage_size=1 << 40)
        session.add(host)
        session.flush()
        st = Storage(name=f"{zone.name}-storage"[:255], external_id=f"{zone.external_id}/storage",
                     manager_id=ctx.manager_id, zone_id=zone.id, storage_type="cloud", medium_type="ssd",
                     capacity=1 << 40, status="online", enabled=True)
        session.add(st)
        session.flush()
        session.add(HostStorage(host_id=host.id, storage_id=st.id, mount_point=""))
    elif hosted.decrypt_config(host.driver_config) != config:  # new credentials: re-encrypt (else: no write)
        host.driver_config = hosted.encrypt_config(config)


def _vpc(session: Session, ctx: Context, o: Any, row: Vpc | None) -> str | None:
    region_id = ctx.id_of(session, "cloudregions", o.region_id)
    if region_id is None:
        raise ValueError(f"its region {o.region_id} was not synced")
    status = INFRA_STATUS.get(o.status, "unknown")
    if row is None:
        return created(session, ctx, "vpcs", Vpc(name=ctx.infra_name(o.name), external_id=o.external_id,
                                              cloudregion_id=region_id, cidr_block=o.cidr_block,
                                              is_default=o.is_default, status=status))
    return updated(setf(row, cloudregion_id=region_id, cidr_block=o.cidr_block, is_default=o.is_default, status=status))


def _wire(session: Session, ctx: Context, vpc_ext: str, zone_ext: str) -> str:
    """The wire of (vpc, zone) (Cloudpods' model), joined to the zone's host with the VPC as bridge."""
    ext = f"{vpc_ext}/{zone_ext}"
    wid = session.scalar(select(Wire.id).where(Wire.manager_id == ctx.manager_id, Wire.external_id == ext))
    if wid is not None:
        return str(wid)
    vpc_id, zone_id = ctx.id_of(session, "vpcs", vpc_ext), ctx.id_of(session, "zones", zone_ext)
    if vpc_id is None or zone_id is None:
        raise ValueError(f"its vpc {vpc_ext} or zone {zone_ext} was not synced")
    w = Wire(name=ctx.infra_name(f"{vpc_ext}-{zone_ext}"), external_id=ext, manager_id=ctx.manager_id,
             vpc_id=vpc_id, zone_id=zone_id, bandwidth=10000, mtu=9001, status="available")
    session.add(w)
    session.flush()
    host_id = session.scalar(select(Host.id).where(Host.manager_id == ctx.manager_id, Host.zone_id == zone_id))
    if host_id is not None:
        session.add(HostWire(host_id=host_id, wire_id=w.id, bridge=vpc_ext, interface=""))
    return w.id


def _network(session: Session, ctx: Context, o: Any, row: Network | None) -> str | None:
    from core.region import ipam

    wire_id = _wire(session, ctx, o.vpc_id, o.zone_id)
    mask = ipaddress.ip_network(o.cidr, strict=False).prefixlen
    fields = {"wire_id": wire_id, "guest_ip_start": o.ip_start, "guest_ip_end": o.ip_end, "guest_ip_mask": mask,
              "guest_gateway": o.gateway, "ip_start_int": ipam.ip_int(o.ip_start), "ip_end_int": ipam.ip_int(o.ip_end),
              "status": INFRA_STATUS.get(o.status, "unknown")}
    if row is None:
        return created(session, ctx, "networks", Network(name=o.name, external_id=o.external_id, server_type="guest",
                                                      alloc_policy="none", vlan_id=1, **fields, **ctx.owner()))
    return updated(setf(row, **fields))


def _secgroup(session: Session, ctx: Context, o: Any, row: Secgroup | None) -> str | None:
    if getattr(o, "secgroup_id", "") and row is None:
        # the cloud's copy of a group here (pushed by the executor): it stays that group, no row of its own
        ctx.remember("secgroup_copies", o.external_id, o.secgroup_id)
        return None
    want = sorted((r.direction, r.protocol, r.ports, r.cidr, r.action, r.priority) for r in o.rules)
    out: str | None
    if row is None:
        row = Secgroup(name=o.name, external_id=o.external_id, description=o.description, status="ready",
                       **ctx.owner())
        out = created(session, ctx, "secgroups", row)
        have: list[Any] = []
    else:
        out = updated(setf(row, name=o.name, description=o.description))
        have = sorted((r.direction, r.protocol, r.ports, r.cidr, r.action, r.priority) for r in session.scalars(
            select(SecgroupRule).where(SecgroupRule.secgroup_id == row.id)))
    if have != want:
        session.execute(delete(SecgroupRule).where(SecgroupRule.secgroup_id == row.id))
        for d, p, ports, cidr, action, prio in want:
            session.add(SecgroupRule(secgroup_id=row.id, direction=d, protocol=p, ports=ports, cidr=cidr,
                                     action=action, priority=prio))
        out = out or "updated"
    return out


def _image(session: Session, ctx: Context, o: Any, row: Cachedimage | None) -> str | None:
    fields = {"name": o.name, "size": o.size_mb, "os_type": o.os_type, "status": IMAGE_STATUS.get(o.status, "unknown")}
    if row is None:
        return created(session, ctx, "cachedimages", Cachedimage(external_id=o.external_id, image_type="system",
                                                              **fields, **ctx.owner()))
    return updated(setf(row, **fields))


def _server(session: Session, ctx: Context, o: Any, row: Server | None) -> str | None:
    zone_id = ctx.id_of(session, "zones", o.zone_id)
    if ctx.lists_hosts:  # on its own host (a vCenter's ESXi host)
        host_id = ctx.id_of(session, "hosts", getattr(o, "host_id", ""))
    else:
        if zone_id is None:
            raise ValueError(f"its zone {o.zone_id or '(none)'} was not synced")
        host_id = ctx.zone_row(session, Host, zone_id)
    out: str | None = None
    if row is None and o.server_id:  # made by a server-create here: link the row to the instance
        row = session.scalar(select(Server).where(Server.id == o.server_id, Server.tenant_id == ctx.tenant_id))
        if row is not None:
            setf(row, external_id=o.external_id, manager_id=ctx.manager_id)
            ctx.remember("servers", o.external_id, row.id)
            out = "updated"
    status = server_status(guest_state(o.status))
    if row is None:
        row = Server(id=imported_server_id(ctx.manager_id, o.external_id), name=o.name, external_id=o.external_id,
                     status=status or "unknown", power_status=POWER_STATUS.get(status or "", "unknown"),
                     vcpu_count=o.vcpu or 1, vmem_size=o.memory_mb or 0, hypervisor=ctx.driver, os_type=o.os_type,
                     host_id=host_id, zone_id=zone_id, **ctx.owner())
        out = created(session, ctx, "servers", row)
        if row.id not in ctx.ips:
            ctx.ips[row.id] = set()  # a row new here holds no address yet
        _imported_secgroups(session, ctx, row.id, o.secgroup_ids)
    else:
        fields: dict[str, Any] = {"name": o.name, "host_id": host_id, "zone_id": zone_id}
        if o.vcpu:
            fields.update(vcpu_count=o.vcpu, vmem_size=o.memory_mb)
        # a task acting on it owns its status; a row changed after the cloud was read (a server-stop that
        # ended meanwhile) is newer than the listing: the next sync reads the cloud again
        if row.active_task_id is None and status is not None and not _changed_since(row, ctx.listed_at):
            fields.update(status=status, power_status=POWER_STATUS.get(status, "unknown"))
        out = out or updated(setf(row, **fields))
    if _server_ips(session, ctx, row.id, o.private_ips):
        out = out or "updated"
    return out


def _changed_since(row: Any, listed_at: datetime | None) -> bool:
    """Whether ``row`` was written after ``listed_at`` (then what the cloud listed then may be older)."""
    changed = getattr(row, "updated_at", None)
    return listed_at is not None and changed is not None and changed >= listed_at


def _imported_secgroups(session: Session, ctx: Context, server_id: str, ext_ids: tuple[str, ...]) -> None:
    """An instance new here is in the groups the cloud says: our pushed copies are their groups here,
    the others the cloud's own groups as synced. (Later the groups change here and are pushed.)"""
    copies = ctx.ids.get("secgroup_copies", {})
    ids = [copies.get(e) or ctx.id_of(session, "secgroups", e) for e in ext_ids]
    for gid in dict.fromkeys(g for g in ids if g):
        session.add(GuestSecgroup(id=_uuid(), guest_id=server_id, secgroup_id=gid))


def _server_ips(session: Session, ctx: Context, server_id: str, ips: tuple[tuple[str, str], ...]) -> bool:
    """The instance's private addresses held in their networks (IPAM never hands them out again)."""
    from core.region import ipam

    if server_id in ctx.ips:
        have = ctx.ips[server_id]
    else:
        have = {(a.network_id, a.ip_addr) for a in session.scalars(
            select(IpAllocation).where(IpAllocation.owner_type == "server", IpAllocation.owner_id == server_id))}
    if all((ctx.id_of(session, "networks", sub), ip) in have for sub, ip in ips):
        return False  # the usual case: nothing to look up
    changed = False
    for index, (subnet, ip) in enumerate(ips):
        net_id = ctx.id_of(session, "networks", subnet)
        if net_id is None or (net_id, ip) in have:
            continue
        n = ipam.ip_int(ip)
        if (net_id, n) in ctx.occupied:
            continue  # held by another owner here: the cloud's answer wins at its next change
        ctx.occupied.add((net_id, n))
        session.add(IpAllocation(id=_uuid(), network_id=net_id, ip_addr=ip, ip_int=n, owner_type="server",
                                 owner_id=server_id, mac="", nic_index=index, notes="synced"))
        have.add((net_id, ip))
        changed = True
    return changed


def _uuid() -> str:
    from core.db.base import new_uuid

    return new_uuid()


def _disk(session: Session, ctx: Context, o: Any, row: Disk | None) -> str | None:
    zone_id = ctx.id_of(session, "zones", o.zone_id)
    if ctx.lists_hosts:  # on its own storage (a vCenter's datastore)
        storage_id = ctx.id_of(session, "storages", getattr(o, "storage_id", ""))
    else:
        storage_id = ctx.zone_row(session, Storage, zone_id)
    server_id = ctx.id_of(session, "servers", o.instance_id)
    fields = {"name": o.name, "disk_size": o.size_mb, "storage_id": storage_id, "server_id": server_id,
              "access_path": o.device, "status": DISK_STATUS.get(o.status, "unknown")}
    if row is None and o.disk_id:  # made here for this disk row (a tag on the volume): link it
        row = session.scalar(select(Disk).where(Disk.id == o.disk_id, Disk.tenant_id == ctx.tenant_id,
                                                Disk.external_id == ""))
        if row is not None:
            row.external_id, row.manager_id = o.external_id, ctx.manager_id
            ctx.remember("disks", o.external_id, row.id)
            setf(row, **{k: v for k, v in fields.items() if k != "name"})
            return "updated"
    if row is None and server_id and (ctx.unlinked is None or server_id in ctx.unlinked):
        # a disk a server-create made here: link it
        row = session.scalar(select(Disk).where(Disk.server_id == server_id, Disk.external_id == "",
                                                Disk.disk_type == o.disk_type).order_by(Disk.disk_index).limit(1))
        if row is not None:
            row.external_id, row.manager_id = o.external_id, ctx.manager_id
            ctx.remember("disks", o.external_id, row.id)
            setf(row, **{k: v for k, v in fields.items() if k != "name"})
            return "updated"
    if row is None:
        return created(session, ctx, "disks", Disk(external_id=o.external_id, disk_format="raw", disk_type=o.disk_type,
                                                auto_delete=True, **fields, **ctx.owner()))
    return updated(setf(row, **fields))


def _eip(session: Session, ctx: Context, o: Any, row: Eip | None) -> str | None:
    server_id = ctx.id_of(session, "servers", o.instance_id)
    fields = {"ip_addr": o.ip_addr, "associate_type": "server" if server_id else "", "associate_id": server_id,
              "cloudregion_id": ctx.id_of(session, "cloudregions", o.region_id)}
    if row is None and o.eip_id:
        # an eip-create whose allocation the task had not recorded yet (it stopped in between): link it
        row = session.scalar(select(Eip).where(Eip.id == o.eip_id, Eip.external_id == ""))
        if row is not None:
            row.external_id, row.manager_id = o.external_id, ctx.manager_id
            ctx.remember("eips", o.external_id, row.id)
            setf(row, **fields)
            return "updated"
    if row is None:
        return created(session, ctx, "eips", Eip(external_id=o.external_id, name=o.name, status="ready", **fields,
                                              **ctx.owner()))
    if row.status not in ("ready", "unknown"):  # a task of its own is changing it: the task says how it ends
        return updated(setf(row, ip_addr=o.ip_addr, cloudregion_id=fields["cloudregion_id"]))
    return updated(setf(row, status="ready", **fields))


APPLIERS: dict[str, Callable[[Session, Context, Any, Any], str | None]] = {
    "cloudregions": _region, "zones": _zone, "vpcs": _vpc, "networks": _network, "secgroups": _secgroup,
    "cachedimages": _image, "servers": _server, "disks": _disk, "eips": _eip,
    "wires": cloud_hosts.wire, "storages": cloud_hosts.storage, "hosts": cloud_hosts.host,
}


EIP_BUSY = ("allocating", "associating", "dissociating", "deallocating")  # core/region/cloud/eips.py's tasks


# ---- what the cloud no longer has (only after a complete listing) ----------------------------------------
def delete_gone(session: Session, ctx: Context, kind: str, seen: set[str], stats: dict[str, Any],
                error: ErrorFn, unreadable: frozenset[str] = frozenset()) -> None:
    """Rows the cloud no longer has. ``unreadable``: ids the cloud has but could not be read; they
    and the ids under them ("vm-42" covers "vm-42/2000") are kept."""
    model = MODELS[kind]
    if kind == "hosts" and not ctx.lists_hosts:
        return  # a zone's host goes with its zone
    have = session.execute(select(model.external_id, model.id).where(model.manager_id == ctx.manager_id,
                                                                     model.external_id != "")).tuples().all()
    gone = [rid for ext, rid in have if ext not in seen and ext.partition("/")[0] not in unreadable]
    for row in list(session.scalars(select(model).where(model.id.in_(gone)))) if gone else []:
        if getattr(row, "active_task_id", None) or (kind == "eips" and row.status in EIP_BUSY):
            continue  # a task acts on it (e.g. its delete): the task decides
        try:
            with session.begin_nested():
                purge_row(session, kind, row)
                session.flush()
        except Exception as exc:
            error(kind, f"{row.external_id}: gone from the cloud but not deleted here: "
                        f"{getattr(exc, 'details', None) or exc}")
            continue
        ctx.ids.get(kind, {}).pop(row.external_id, None)
        stats["deleted"] += 1


def purge_row(session: Session, kind: str, row: Any) -> None:
    """Delete one synced row and what hangs off it here (never anything in the cloud)."""
    if kind in ("hosts", "storages", "wires"):
        cloud_hosts.purge(session, kind, row)
    elif kind == "servers":
        from core.region.release import release_server
        from core.region.secgroups import drop_server

        drop_server(session, row)  # first: host rows are locked in one order (see drop_server)
        release_server(session, row, keep_disks=True)
        for d in session.scalars(select(Disk).where(Disk.server_id == row.id)):
            d.server_id = None
    elif kind == "disks":
        pass
    elif kind == "networks":
        session.execute(delete(IpAllocation).where(IpAllocation.network_id == row.id))
    elif kind == "secgroups":
        from core.region.secgroups import touch_secgroups

        touch_secgroups(session, [row.id])  # its servers' hosts enforce less from now on
        session.execute(delete(GuestSecgroup).where(GuestSecgroup.secgroup_id == row.id))
        session.execute(delete(SecgroupRule).where(SecgroupRule.secgroup_id == row.id))
    elif kind == "zones":
        for h in session.scalars(select(Host).where(Host.zone_id == row.id, Host.manager_id == row.manager_id)):
            session.execute(delete(HostStorage).where(HostStorage.host_id == h.id))
            session.execute(delete(HostWire).where(HostWire.host_id == h.id))
            session.delete(h)
        session.flush()
        for w in session.scalars(select(Wire).where(Wire.zone_id == row.id, Wire.manager_id == row.manager_id)):
            session.delete(w)
        for st in session.scalars(select(Storage).where(Storage.zone_id == row.id,
                                                        Storage.manager_id == row.manager_id)):
            session.delete(st)
        session.flush()
    elif kind == "vpcs":
        for w in session.scalars(select(Wire).where(Wire.vpc_id == row.id, Wire.manager_id == row.manager_id)):
            session.execute(delete(HostWire).where(HostWire.wire_id == w.id))
            session.delete(w)
        session.flush()
    session.delete(row)


# the order rows are purged in when an account goes (children first)
PURGE_ORDER = ("eips", "disks", "servers", "cachedimages", "secgroups", "networks", "hosts", "storages", "wires",
               "vpcs", "zones", "cloudregions")
