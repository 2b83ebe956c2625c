"""Instance snapshots (Cloudpods' ``instance_snapshots``): every disk of a server at one instant, and
the server's shape, so that ``server-create --instance-snapshot`` clones it.

An instance snapshot is one disk snapshot per disk (``snapshots.instance_snapshot_id``), taken by the
server's host in ONE work item (a running qemu takes them in one atomic QMP transaction: no guest
write lands between two disks). Its disk snapshots live inside their disks' files like any other
(core/region/managers/snapshots.py), so:

- they count against the ``snapshot`` quota, one per disk;
- they are deleted with the instance snapshot, not one by one (``snapshot-delete`` of one is a 400);
- when one of its disks is gone for good (the server purged), its snapshot goes with it and the
  instance snapshot is dropped: a clone needs every disk (``snapshot_base.drop_instance_snapshots``);
- a clone is made on the same host, copying each disk out of its snapshot (the files are there).
"""
from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.api.listing import ListQuery
from core.errors import InputParameterError, InvalidStatusError
from core.region import quotas
from core.region.managers._util import add_names, names_by_id, unique_name
from core.region.managers.snapshot_base import SnapshotManagerBase, drop_rows, guard_host_acts, hold, members
from core.region.models import Disk, Host, InstanceSnapshot, IpAllocation, Server, Snapshot
from core.tasks.engine import submit


def _server_disks(session: Session, server: Server) -> list[Disk]:
    return list(session.scalars(select(Disk).where(Disk.server_id == server.id).order_by(Disk.disk_index)))


def _guard_server(session: Session, server: Server, action: str) -> list[Disk]:
    """The server's host can act on all its disks now: deployed, out of the recycle bin, idle, host
    online and able; its disks (all idle)."""
    if server.pending_deleted:
        raise InvalidStatusError(f"server {server.name} is in the recycle bin: cancel-delete it first")
    if not server.host_id:
        raise InvalidStatusError(f"server {server.name} is not deployed on a host")
    disks = _server_disks(session, server)
    guard_host_acts(session, server, disks, action)
    return disks


def create_instance_snapshot(session: Session, cred: Credential, server: Server, name: Any) -> InstanceSnapshot:
    """``POST /servers/<id>/instance-snapshot {name}``: the rows (creating) and the task that takes them."""
    if not isinstance(name, str) or not name:
        raise InputParameterError("name: required (the instance snapshot's name)")
    if server.status not in ("ready", "running"):
        raise InvalidStatusError(f"cannot snapshot server {server.name} in status {server.status} "
                                 "(allowed: ready, running)")
    disks = _guard_server(session, server, "instance-snapshot")
    if not disks:
        raise InvalidStatusError(f"server {server.name} has no disks to snapshot")
    unique_name(session, InstanceSnapshot, name, scope={"tenant_id": server.tenant_id})
    snap_names = [f"{name}-disk{d.disk_index}" for d in disks]
    for n in snap_names:
        unique_name(session, Snapshot, n, scope={"tenant_id": server.tenant_id})
    quotas.reserve(session, server.tenant_id, server.domain_id, snapshot=len(disks))
    nets = [{"index": a.nic_index, "network": a.network_id} for a in session.scalars(
        select(IpAllocation).where(IpAllocation.owner_type == "server", IpAllocation.owner_id == server.id)
        .order_by(IpAllocation.nic_index))]
    config = {"vcpu_count": server.vcpu_count, "vmem_size": server.vmem_size, "os_type": server.os_type,
              "os_arch": server.os_arch, "hypervisor": server.hypervisor, "host_id": server.host_id,
              "keypair_id": server.keypair_id, "nets": nets,
              "disks": [{"index": d.disk_index, "size": d.disk_size, "disk_type": d.disk_type,
                         "format": d.disk_format or "qcow2", "image_id": d.template_id or None,
                         "storage_id": d.storage_id, "disk_id": d.id} for d in disks]}
    isnap = InstanceSnapshot(name=name, guest_id=server.id, server_config=config, status="creating",
                             size=sum(d.disk_size for d in disks), tenant_id=server.tenant_id,
                             domain_id=server.domain_id)
    session.add(isnap)
    session.flush()
    for d, n in zip(disks, snap_names, strict=True):
        session.add(Snapshot(name=n, disk_id=d.id, storage_id=d.storage_id, size=d.disk_size, status="creating",
                             instance_snapshot_id=isnap.id, tenant_id=d.tenant_id, domain_id=d.domain_id))
    session.flush()
    t = submit(session, "InstanceSnapshotCreateTask", "instance_snapshot", isnap.id, isnap.name,
               {"server_id": server.id}, cred=cred, tenant_id=server.tenant_id, domain_id=server.domain_id)
    hold(server, disks, t.id)
    return isnap


class InstanceSnapshotManager(SnapshotManagerBase):
    """``POST /instance_snapshots {guest_id|server, name}``: Cloudpods' spelling besides the action."""

    keyword, plural, model = "instance_snapshot", "instance_snapshots", InstanceSnapshot
    contexts: ClassVar[dict[str, str]] = {"servers": "guest_id"}
    of = ("servers", "server", ("guest_id", "server", "server_id"))

    def list_filter(self, session: Session, cred: Credential, stmt: Any, q: ListQuery) -> Any:
        """``?server=<id or name>`` (``guest_id`` takes ids, as every column)."""
        ids = self.ref_values(session, cred, q, "server", "server_id")
        return stmt.where(InstanceSnapshot.guest_id.in_(ids)) if ids else stmt

    def take(self, session: Session, cred: Credential, of: Any, name: Any) -> Any:
        return create_instance_snapshot(session, cred, of, name)

    def delete(self, session: Session, cred: Credential, row: Any, params: dict[str, str]) -> dict[str, Any] | None:
        if row.status in ("creating", "deleting"):
            raise InvalidStatusError(f"instance snapshot {row.name} is {row.status}: retry when it is done")
        snaps = members(session, row.id)
        server = session.get(Server, row.guest_id)
        live = [s for s in snaps if s.status != "create_failed"]
        if not live or server is None or not server.host_id:
            # nothing on a host to remove (never taken), or no host can reach it: the rows go
            drop_rows(session, row.tenant_id, snaps)
            session.delete(row)
            return None
        disks = _guard_server(session, server, "instance-snapshot")
        t = submit(session, "InstanceSnapshotDeleteTask", "instance_snapshot", row.id, row.name, {},
                   cred=cred, tenant_id=row.tenant_id, domain_id=row.domain_id)
        hold(server, disks, t.id)
        row.status = "deleting"
        for s in snaps:
            s.status = "deleting"
        return self.to_dict(session, row)

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        add_names(items, "guest_id", names_by_id(session, Server, [r.guest_id for r in rows]), "guest")
        hosts = names_by_id(session, Host, [(r.server_config or {}).get("host_id") for r in rows])
        counts: dict[str, int] = {}
        for (iid,) in session.execute(select(Snapshot.instance_snapshot_id).where(
                Snapshot.instance_snapshot_id.in_([r.id for r in rows]))):
            counts[iid] = counts.get(iid, 0) + 1
        for r, it in zip(rows, items, strict=True):
            cfg = r.server_config or {}
            it["host"] = hosts.get(cfg.get("host_id") or "", "")
            it["snapshot_count"] = counts.get(r.id, 0)
            it["vcpu_count"], it["vmem_size"] = cfg.get("vcpu_count"), cfg.get("vmem_size")


def reset_to_instance_snapshot(session: Session, cred: Credential, server: Server, body: dict[str, Any]) -> None:
    """``instance-snapshot-reset SERVER --instance-snapshot ISNAP [--auto-start]`` (Cloudpods'
    instance-snapshot-reset): every disk of the stopped server back to its snapshot in ISNAP, one disk
    after the other on its host; started afterwards with ``auto_start``."""
    from core.region.registry import get_manager

    unknown = sorted(set(body) - {"instance_snapshot", "instance_snapshot_id", "auto_start"})
    if unknown:
        raise InputParameterError(f"instance-snapshot-reset: unknown parameter(s) {', '.join(unknown)}")
    ref = body.get("instance_snapshot") or body.get("instance_snapshot_id")
    if not isinstance(ref, str) or not ref:
        raise InputParameterError("instance_snapshot: required (an instance snapshot of this server)")
    auto_start = body.get("auto_start", False)
    if not isinstance(auto_start, bool):
        raise InputParameterError("auto_start: true or false")
    isnap = get_manager("instance_snapshots").lookup(session, cred, ref, "instance_snapshot")
    if isnap.guest_id != server.id:
        raise InputParameterError(f"instance snapshot {isnap.name} is not of server {server.name}")
    if isnap.status != "ready":
        raise InvalidStatusError(f"instance snapshot {isnap.name} is {isnap.status}, not ready")
    if server.status != "ready":
        raise InvalidStatusError(f"cannot reset server {server.name} in status {server.status} to an instance "
                                 "snapshot: stop the server first (allowed: ready)")
    disks = {d.id: d for d in _guard_server(session, server, "disk-reset")}
    snaps = sorted(members(session, isnap.id), key=lambda s: disks[s.disk_id].disk_index if s.disk_id in disks else -1)
    lost = [s.name for s in snaps if s.disk_id not in disks or s.status != "ready"]
    if lost or not snaps:
        raise InvalidStatusError(f"instance snapshot {isnap.name}: disk snapshot(s) {', '.join(lost) or 'none'} "
                                 "no longer belong to a disk of the server (detached or gone)")
    t = submit(session, "InstanceSnapshotResetTask", "server", server.id, server.name,
               {"instance_snapshot_id": isnap.id, "resets": [[s.disk_id, s.id] for s in snaps], "done": 0,
                "auto_start": auto_start}, cred=cred, tenant_id=server.tenant_id, domain_id=server.domain_id)
    hold(server, list(disks.values()), t.id)
    for s in snaps:
        disks[s.disk_id].status = "resetting"
