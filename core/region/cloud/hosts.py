"""Hosts, storages and wires of a provider that lists its own (``ProviderCapability.HOSTS``: a vCenter).

Such a provider's zones get no stand-in host: each ``CloudHost`` becomes an executor host
(``target=executor``, ``host_type`` = the driver, the account's config plus ``host`` = its
external id, encrypted) with the host's real capacity, joined to the storages it mounts and the
wires it reaches (the wire's ``bridge`` is the port group its VMs' NICs go on). Servers land on
their ``CloudInstance.host_id`` host, disks on their ``CloudDisk.storage_id`` storage.

Like every applier (core/region/cloud/apply.py, rows.py), fields are written only when they changed and
the joints only when they differ, so an unchanged vCenter syncs with no write.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.region.cloud.rows import created, setf, updated
from core.region.models import Disk, Host, HostStorage, HostWire, Network, Server, Storage, Wire
from drivers.base import CloudStatus


def _need(ctx: Any, session: Session, kind: str, external_id: str) -> str:
    row_id = ctx.id_of(session, kind, external_id)
    if row_id is None:
        raise ValueError(f"its {kind[:-1]} {external_id} was not synced")
    return str(row_id)


def wire(session: Session, ctx: Any, o: Any, row: Wire | None) -> str | None:
    zone_id, vpc_id = _need(ctx, session, "zones", o.zone_id), _need(ctx, session, "vpcs", o.vpc_id)
    ctx.wire_bridges[o.external_id] = o.bridge or o.name
    if row is None:
        return created(session, ctx, "wires", Wire(name=ctx.infra_name(o.name), external_id=o.external_id,
                                                vpc_id=vpc_id, zone_id=zone_id, bandwidth=10000, mtu=1500,
                                                status="available"))
    return updated(setf(row, vpc_id=vpc_id, zone_id=zone_id))


def storage(session: Session, ctx: Any, o: Any, row: Storage | None) -> str | None:
    zone_id = _need(ctx, session, "zones", o.zone_id)
    status = "online" if o.status is CloudStatus.AVAILABLE else "offline"
    fields = {"zone_id": zone_id, "capacity": o.capacity_mb, "storage_type": o.storage_type or "vmfs",
              "status": status}
    if row is None:
        return created(session, ctx, "storages", Storage(name=ctx.infra_name(o.name), external_id=o.external_id,
                                                      medium_type="rotate", enabled=True, **fields))
    return updated(setf(row, **fields))


def host(session: Session, ctx: Any, o: Any, row: Host | None) -> str | None:
    from core.region import hosted
    zone_id = _need(ctx, session, "zones", o.zone_id)
    config = {**ctx.host_config, "zone": o.zone_id, "host": o.external_id}
    online = o.status is CloudStatus.AVAILABLE
    fields: dict[str, Any] = {"zone_id": zone_id, "cpu_count": o.cpu_count, "mem_size": o.mem_mb,
                              "version": o.version, "host_status": "online" if online else "offline",
                              "is_maintenance": not o.enabled}
    info = {"cpu_mhz": o.cpu_mhz, "cpu_desc": o.cpu_desc, **dict(o.extra)}
    out: str | None
    if row is None:
        from drivers.registry import get_driver

        cls = get_driver(ctx.driver)
        row = Host(name=ctx.infra_name(o.name), external_id=o.external_id, host_type=ctx.driver, target="executor",
                   driver=ctx.driver, driver_version=str(getattr(cls, "version", "") or ""),
                   capabilities=sorted(c.value for c in getattr(cls, "capabilities", ())),
                   driver_config=hosted.encrypt_config(config), status="running", enabled=o.enabled,
                   last_ping_at=utcnow(), cpu_cmtbound=8.0, mem_cmtbound=1.0, sys_info=info, **fields)
        out = created(session, ctx, "hosts", row)
    else:
        changed = setf(row, **fields)
        if {k: (row.sys_info or {}).get(k) for k in info} != info:
            row.sys_info = {**(row.sys_info or {}), **info}
            changed = True
        if hosted.decrypt_config(row.driver_config) != config:  # new credentials: re-encrypt (else no write)
            row.driver_config = hosted.encrypt_config(config)
            changed = True
        if changed:
            row.generation += 1
        out = updated(changed)
    if _joints(session, ctx, row, o):
        out = out or "updated"
    return out


def _joints(session: Session, ctx: Any, row: Host, o: Any) -> bool:
    """The host's storages and wires as the provider says (only differences written)."""
    changed = False
    want_st = {sid for sid in (ctx.id_of(session, "storages", e) for e in o.storage_ids) if sid}
    have_st = dict(session.execute(select(HostStorage.storage_id, HostStorage.id)
                                   .where(HostStorage.host_id == row.id)).tuples().all())
    for sid in want_st - set(have_st):
        session.add(HostStorage(host_id=row.id, storage_id=sid, mount_point=""))
        changed = True
    for sid in set(have_st) - want_st:
        session.execute(delete(HostStorage).where(HostStorage.id == have_st[sid]))
        changed = True
    want_w: dict[str, str | None] = {}  # None: the wire's port group name is unknown this sync (keep it)
    for e in o.wire_ids:
        wid = ctx.id_of(session, "wires", e)
        if wid:
            want_w[wid] = ctx.wire_bridges.get(e)
    have_w = {w: (j, b) for w, j, b in session.execute(select(HostWire.wire_id, HostWire.id, HostWire.bridge)
                                                       .where(HostWire.host_id == row.id)).tuples().all()}
    for wid, bridge in want_w.items():
        if wid not in have_w:
            session.add(HostWire(host_id=row.id, wire_id=wid, bridge=bridge or "", interface=""))
            changed = True
        elif bridge is not None and have_w[wid][1] != bridge:
            session.execute(update(HostWire).where(HostWire.id == have_w[wid][0]).values(bridge=bridge))
            changed = True
    for wid in set(have_w) - set(want_w):
        session.execute(delete(HostWire).where(HostWire.id == have_w[wid][0]))
        changed = True
    if changed:
        total = session.scalar(select(func.coalesce(func.sum(Storage.capacity), 0)).where(Storage.id.in_(want_st)))
        row.storage_size = int(total or 0)
    return changed


def purge(session: Session, kind: str, row: Any) -> None:
    """What hangs off a synced host, storage or wire here goes with it (never anything in the cloud)."""
    if kind == "hosts":
        session.execute(delete(HostStorage).where(HostStorage.host_id == row.id))
        session.execute(delete(HostWire).where(HostWire.host_id == row.id))
        session.execute(update(Server).where(Server.host_id == row.id).values(host_id=None))
    elif kind == "storages":
        session.execute(delete(HostStorage).where(HostStorage.storage_id == row.id))
        session.execute(update(Disk).where(Disk.storage_id == row.id).values(storage_id=None))
    elif kind == "wires":
        n = session.scalar(select(func.count()).select_from(Network).where(Network.wire_id == row.id)) or 0
        if n:
            raise ValueError(f"wire {row.name} still has {n} network(s): delete them first")
        session.execute(delete(HostWire).where(HostWire.wire_id == row.id))
