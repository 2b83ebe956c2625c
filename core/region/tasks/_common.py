"""What region tasks share: loading the server, the agent payload, finishing."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.host_protocol import DeployPayload, DiskPayload, GuestPayload, ServerRef
from core.region.models import Disk, HostStorage, HostWire, IpAllocation, Keypair, Network, Server, Storage, Wire
from core.tasks.engine import Run, StageError, TaskBase


class ServerTask(TaskBase):
    """A task that holds its server (``active_task_id``) while it runs. When it fails, ``undo`` gives
    back what this task took (nothing by default; the server may be gone), then the server is let go."""

    def undo(self, run: Run, server: Server | None, reason: str) -> None:
        """What a failure of this task puts back before the server is released."""

    def on_failed(self, run: Run, reason: str) -> None:
        server = run.session.get(Server, run.task.obj_id)
        self.undo(run, server, reason)
        if server is not None:
            release_task(server, run)


def server_of(run: Run) -> Server:
    s = run.session.get(Server, run.task.obj_id)
    if s is None:
        raise StageError(f"server {run.task.obj_id} no longer exists")
    return s


def release_task(server: Server, run: Run) -> None:
    if server.active_task_id == run.task.id:
        server.active_task_id = None


def agent_payload(session: Session, server: Server, password: str | None = None,
                  model: type[GuestPayload] = DeployPayload, host_id: str | None = None, **extra: Any) -> Any:
    """Everything a host needs to build the guest, as the contract's ``model`` (a GuestPayload).

    Bridges and mount points are those of ``host_id`` (default: the server's host; a migration's target)."""
    hid = host_id or server.host_id
    nics = []
    for a, net in session.execute(select(IpAllocation, Network).join(Network, Network.id == IpAllocation.network_id)
                                  .where(IpAllocation.owner_type == "server", IpAllocation.owner_id == server.id)
                                  .order_by(IpAllocation.nic_index)):
        hw = session.scalar(select(HostWire).where(HostWire.host_id == hid,
                                                   HostWire.wire_id == net.wire_id))
        wire = session.get(Wire, net.wire_id)
        nics.append({"index": a.nic_index, "ifname": a.ifname, "ip": a.ip_addr, "mac": a.mac,
                     "mask": net.guest_ip_mask, "gateway": net.guest_gateway, "dns": net.guest_dns,
                     "vlan_id": net.vlan_id, "network_id": net.id, "wire_id": net.wire_id,
                     "bridge": hw.bridge if hw else "", "mtu": wire.mtu if wire else 1500})
    disks = []
    sources = _snapshot_sources(session, server) if model is DeployPayload else {}
    for d in session.scalars(select(Disk).where(Disk.server_id == server.id).order_by(Disk.disk_index)):
        if d.disk_index in sources and sources[d.disk_index] is None and d.status in ("init", "allocating"):
            raise StageError(f"disk {d.name}: the snapshot it is cloned from is gone")
        st = session.get(Storage, d.storage_id) if d.storage_id else None
        hs = session.scalar(select(HostStorage).where(HostStorage.host_id == hid,
                                                      HostStorage.storage_id == d.storage_id)) if st else None
        disks.append({"id": d.id, "index": d.disk_index, "size": d.disk_size, "format": d.disk_format,
                      "disk_type": d.disk_type, "image_id": d.template_id or None, "storage_id": d.storage_id,
                      "storage_type": st.storage_type if st else "", "mount_point": hs.mount_point if hs else "",
                      "access_path": d.access_path or "", "snapshot_source": sources.get(d.disk_index)})
    kp = session.get(Keypair, server.keypair_id) if server.keypair_id else None
    out: dict[str, Any] = {
        "server": {"id": server.id, "name": server.name, "vcpu_count": server.vcpu_count,
                   "vmem_size": server.vmem_size, "hypervisor": server.hypervisor or "kvm",
                   "os_type": server.os_type or "", "os_arch": server.os_arch or "",
                   "auto_start": bool(server.auto_start), "user_data": server.user_data or "",
                   "public_key": kp.public_key if kp else None},
        "nics": nics, "disks": disks,
    }
    if password:
        out["server"]["password"] = password
    cs = server.create_spec or {}  # the ISO in the drive and the boot order (core.region.cdrom)
    out["cdrom_image_id"] = (cs.get("cdrom") or {}).get("image_id")
    out["boot_order"] = list(cs.get("boot_order") or [])
    return model.model_validate({**out, **extra})


def _snapshot_sources(session: Session, server: Server) -> dict[int, dict[str, Any] | None]:
    """Disk index -> the disk snapshot a clone's disk is copied from (create_spec ``snapshot_id``);
    None: that snapshot is gone since (a disk made already needs it no more)."""
    from core.region.models import Snapshot

    out: dict[int, dict[str, Any] | None] = {}
    for want in (server.create_spec or {}).get("disks") or []:
        if not want.get("snapshot_id"):
            continue
        snap = session.get(Snapshot, want["snapshot_id"])
        src = session.get(Disk, snap.disk_id) if snap is not None else None
        if snap is None or src is None or not src.server_id:
            out[int(want["index"])] = None
            continue
        out[int(want["index"])] = {"server_id": src.server_id, "disk_id": src.id, "index": src.disk_index,
                                   "access_path": src.access_path or "", "snapshot_id": snap.id}
    return out


def server_ref(server: Server) -> ServerRef:
    return ServerRef(id=server.id, name=server.name)


def disk_payload(d: Disk, *, index: int | None = None, with_image: bool = False) -> DiskPayload:
    """A stored disk as the agent's work items name it (its own index unless ``index`` is given; its
    image only where the agent may need it, e.g. an attached disk made from one)."""
    return DiskPayload(id=d.id, index=d.disk_index if index is None else index, size=d.disk_size,
                       format=d.disk_format or "qcow2", disk_type=d.disk_type or "data",
                       storage_id=d.storage_id or "", image_id=(d.template_id or None) if with_image else None,
                       access_path=d.access_path or "")


def disk_of(run: Run) -> Disk:
    """The task's ``disk_id`` (attach, detach): gone is a failure of the task."""
    disk = run.session.get(Disk, run.params["disk_id"])
    if disk is None:
        run.fail("the disk no longer exists")
    return disk
