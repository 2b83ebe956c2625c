"""Disk snapshots of KVM guests (qcow2 INTERNAL snapshots, named by the region's snapshot id), and
growing a disk (``resize_disk``: the same file, online or not).

Why internal (the snapshot lives inside the disk's own qcow2 file) and not external (a new overlay
file per snapshot, the old file frozen as its backing):

- taking one is a metadata update of the file (refcounts), O(1) in the disk's size, and works on a
  running guest too (QMP ``blockdev-snapshot-internal-sync`` through libvirt's monitor passthrough);
- the snapshot travels with its disk: cold migration, keeping a data disk when its server goes and
  saving an image each move or read ONE file, never a chain that must be moved and rebased together;
- deleting a snapshot never merges data between files (an external chain needs a block commit or
  stream, whose interruption leaves a half-merged chain); ``disk-reset`` is ``qemu-img snapshot -a``
  on the stopped disk and the guest's libvirt definition never changes.

The price: a snapshot shares its disk's file and storage (no snapshots on another storage) and is
gone with its disk; the region deletes a disk's snapshot rows with it.
"""
from __future__ import annotations

import json
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from drivers.base import HypervisorError, InstanceDisk

log = logging.getLogger(__name__)

__all__ = ["KvmSnapshots", "apply_snapshot", "copy_snapshot", "create_snapshot", "delete_snapshot",
           "snapshot_names"]

_NAME = re.compile(r"^[0-9A-Za-z-]{1,64}$")


def _name(snapshot_id: str) -> str:
    if not _NAME.match(snapshot_id):
        raise HypervisorError(f"bad snapshot id {snapshot_id!r}")
    return snapshot_id


def snapshot_names(path: str) -> set[str]:
    """The internal snapshots of a qcow2 file (``-U``: also while a running guest holds it)."""
    from drivers.kvm.disks import _qemu_img

    data = json.loads(_qemu_img(["info", "-U", "--output=json", path]))
    if data.get("format") != "qcow2":
        raise HypervisorError(f"{path} is {data.get('format')}: only qcow2 disks keep snapshots")
    return {str(s.get("name")) for s in data.get("snapshots") or []}


def create_snapshot(path: str, name: str) -> None:
    from drivers.kvm.disks import _qemu_img

    _qemu_img(["snapshot", "-q", "-c", _name(name), path])


def delete_snapshot(path: str, name: str) -> None:
    from drivers.kvm.disks import _qemu_img

    _qemu_img(["snapshot", "-q", "-d", _name(name), path])


def apply_snapshot(path: str, name: str) -> None:
    from drivers.kvm.disks import _qemu_img

    _qemu_img(["snapshot", "-q", "-a", _name(name), path])


def copy_snapshot(src: str, name: str, dst: str, size_mb: int) -> None:
    """A new standalone qcow2 ``dst`` with the contents ``src`` had at its snapshot ``name`` (flattened:
    no backing file, so the copy outlives the source and its image), grown to ``size_mb`` when larger.
    ``-U``: the source may be held by its running guest (the snapshot itself never changes)."""
    from drivers.kvm.disks import _create, disk_info, resize_disk

    tmp = dst + ".part"
    _create(["convert", "-U", "-q", "-f", "qcow2", "-O", "qcow2", "-l", f"snapshot.name={_name(name)}", src, tmp],
            tmp, timeout=3600)
    if disk_info(tmp).virtual_size_mb < size_mb:
        resize_disk(tmp, size_mb)
    os.replace(tmp, dst)


class KvmSnapshots:
    """``drivers.base.Snapshottable`` for ``KvmInstances`` (which provides driver, env, _disk_path...)."""

    driver: Any
    simulated: bool

    def _disk_path(self, server_id: str, disk: InstanceDisk, *, existing: bool = False) -> str:
        raise NotImplementedError

    def create_snapshot(self, server_id: str, disk: InstanceDisk, snapshot_id: str) -> int:
        from drivers.kvm.disks import disk_info

        path = self._snapshot_file(server_id, disk)
        if snapshot_id not in snapshot_names(path):  # redelivered: taken already
            node = self._live_node(server_id, path)
            if node is None:
                create_snapshot(path, snapshot_id)
            else:
                self._qmp(server_id, "blockdev-snapshot-internal-sync", {"device": node, "name": _name(snapshot_id)})
        return disk_info(path).virtual_size_mb

    def create_instance_snapshot(self, server_id: str, disks: Sequence[tuple[InstanceDisk, str]]) -> list[int]:
        """All disks at one instant: a running qemu takes them in ONE QMP ``transaction`` (atomic: every
        snapshot or none, no guest write between two of them); a stopped guest (or a test:/// one, which
        runs no qemu) writes nothing, so one ``qemu-img snapshot`` per file is just as consistent."""
        from drivers.kvm.disks import disk_info

        todo: list[tuple[str, str]] = []
        paths = []
        for disk, sid in disks:
            path = self._snapshot_file(server_id, disk)
            paths.append(path)
            if _name(sid) not in snapshot_names(path):  # redelivered: taken already
                todo.append((path, sid))
        live = [(self._live_node(server_id, p), p, sid) for p, sid in todo]
        if any(node for node, _p, _s in live):
            self._qmp(server_id, "transaction", {"actions": [
                {"type": "blockdev-snapshot-internal-sync", "data": {"device": node, "name": sid}}
                for node, _p, sid in live]})
        else:
            for _node, p, sid in live:
                create_snapshot(p, sid)
        return [disk_info(p).virtual_size_mb for p in paths]

    def delete_snapshot(self, server_id: str, disk: InstanceDisk, snapshot_id: str) -> bool:
        path = self._snapshot_file(server_id, disk)
        if snapshot_id not in snapshot_names(path):
            return False
        node = self._live_node(server_id, path)
        if node is None:
            delete_snapshot(path, snapshot_id)
        else:
            self._qmp(server_id, "blockdev-snapshot-delete-internal-sync", {"device": node, "name": _name(snapshot_id)})
        return True

    def reset_disk(self, server_id: str, disk: InstanceDisk, snapshot_id: str) -> None:
        path = self._snapshot_file(server_id, disk)
        if self._active(server_id):
            raise HypervisorError(f"guest {server_id} is running: stop it before resetting disk {disk.id}")
        if snapshot_id not in snapshot_names(path):
            raise HypervisorError(f"disk {disk.id} has no snapshot {snapshot_id} (its file is {path})")
        apply_snapshot(path, snapshot_id)

    def resize_disk(self, server_id: str, disk: InstanceDisk, size_mb: int) -> tuple[int, bool]:
        """Grow the disk (``drivers.base.DiskResizable``): a running guest through libvirt's blockResize
        (qemu tells the guest, which sees the new size at once), a stopped one with qemu-img. A disk
        already that large: nothing to do (redelivery); smaller: refused, it would lose data."""
        from drivers.kvm.disks import disk_info, resize_disk

        path = self._snapshot_file(server_id, disk)
        have = disk_info(path).virtual_size_mb
        if size_mb < have:
            raise HypervisorError(f"disk {disk.id} is {have} MiB: it cannot shrink to {size_mb} MiB")
        if size_mb == have:
            return have, False
        if self.simulated or not self._active(server_id):
            return resize_disk(path, size_mb).virtual_size_mb, False
        import libvirt

        dom = self.driver.host.lookup(server_id)
        try:
            dom.blockResize(path, size_mb << 20, libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES)
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"online resize of {path} in guest {server_id}: {exc.get_error_message()}") from None
        return disk_info(path).virtual_size_mb, True

    # --- private ----------------------------------------------------------------------------------

    def _snapshot_file(self, server_id: str, disk: InstanceDisk) -> str:
        path = self._disk_path(server_id, disk, existing=True)
        if not os.path.exists(path):
            raise HypervisorError(f"disk {disk.id}: its file {path} is missing on this host")
        return path

    def _active(self, server_id: str) -> bool:
        return bool(self.driver.host.lookup(server_id).isActive())

    def _live_node(self, server_id: str, path: str) -> str | None:
        """The qemu block node of ``path`` in the running guest, or None when no qemu holds the file
        (guest stopped, or libvirt's test driver, whose guests run no qemu): then qemu-img works on it."""
        if self.simulated or not self._active(server_id):
            return None
        root = ET.fromstring(self.driver.host.lookup(server_id).XMLDesc(0))
        for d in root.iterfind("./devices/disk"):
            src = d.find("source")
            if src is None or os.path.realpath(src.get("file", "")) != os.path.realpath(path):
                continue
            if src.get("index"):  # libvirt >= 5.10 with -blockdev names the format node by this index
                return f"libvirt-{src.get('index')}-format"
            alias = d.find("alias")
            if alias is not None and alias.get("name"):
                return f"drive-{alias.get('name')}"
        raise HypervisorError(f"guest {server_id} runs without {path}: cannot snapshot it live")

    def _qmp(self, server_id: str, command: str, arguments: dict[str, Any]) -> None:
        import libvirt
        import libvirt_qemu

        dom = self.driver.host.lookup(server_id)
        try:
            libvirt_qemu.qemuMonitorCommand(dom, json.dumps({"execute": command, "arguments": arguments}), 0)
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"{command} on guest {server_id}: {exc.get_error_message()}") from None
