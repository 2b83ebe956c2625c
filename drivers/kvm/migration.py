"""Cold migration of KVM instances through the controller (drivers.base.ColdMigratable).

    out = hosted.migrate_out(server_id, disks)     # source: guest stopped, each disk uploaded
    hosted.migrate_in(spec, out)                   # target: disks downloaded, guest defined stopped
    hosted.migrate_cleanup(server_id)              # source: guest, leases and files gone

The source uploads each disk file as it is (a qcow2 overlay stays an overlay: a few MiB for a
fresh guest, not the whole image) and says which image it is backed by; the target builds the
instance as a deploy would (NICs with the same MACs and IPs, config drive, its own image cache
as the backing), puts the downloaded files in place of the fresh disks and points each overlay
at its own cached image (``qemu-img rebase -u``: the bytes are the same image, only the path
differs). On libvirt's test:/// without qemu-img the disks are plain files, copied as they are.

Every step is safe to repeat (a redelivered work item): migrate-out uploads again, migrate-in
starts over, cleanup of a gone guest is a no-op.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from drivers.base import (
    Deployed,
    GuestNotFound,
    GuestStatus,
    HypervisorError,
    InstanceDisk,
    InstanceSpec,
)

log = logging.getLogger(__name__)

__all__ = ["KvmMigration"]


class KvmMigration:
    """Mixin of ``KvmInstances``: the three cold-migration steps (uses its env, driver, paths)."""

    if TYPE_CHECKING:  # provided by KvmInstances
        env: Any
        driver: Any
        _qemu_img: bool

        def instance_dir(self, server_id: str) -> str: ...
        def remove(self, server_id: str, nics: Any = None) -> bool: ...
        def persist(self, server_id: str) -> None: ...
        def _guest_spec(self, spec: InstanceSpec, d: str) -> Any: ...

    def _exchange(self) -> Any:
        if self.env.exchange is None:
            raise HypervisorError("this host has no link to the controller to move disks through")
        return self.env.exchange

    def migrate_out(self, server_id: str, disks: tuple[InstanceDisk, ...]) -> dict[str, Any]:
        """Upload the stopped guest's disks; per disk what the target needs to use it."""
        try:
            g = self.driver.get_guest(server_id)
        except GuestNotFound:
            raise HypervisorError(f"guest {server_id} is not on this host: nothing to migrate") from None
        if g.status is not GuestStatus.STOPPED:
            raise HypervisorError(f"guest {server_id} is {g.status.value}: stop it before a cold migration")
        d = self.instance_dir(server_id)
        exchange = self._exchange()
        out = []
        for disk in sorted(disks, key=lambda x: x.index):
            path = _disk_path(d, disk)
            if not os.path.isfile(path):
                raise HypervisorError(f"disk {disk.id} of guest {server_id}: {path} is missing")
            fmt, backed = _format_of(path) if self._qemu_img else ("raw", False)
            staged = exchange.upload(server_id, disk.id, path)
            out.append({"id": disk.id, "index": disk.index, "sha256": staged.sha256, "size": staged.size,
                        "format": fmt, "backing_image_id": disk.image_id if backed else None})
            log.info("guest %s: disk %s uploaded (%d bytes, %s)", server_id, disk.id, staged.size, fmt)
        return {"disks": out}

    def migrate_in(self, spec: InstanceSpec, source: Mapping[str, Any]) -> Deployed:
        """Build the guest here from ``spec`` with the disks migrate-out uploaded; defined stopped."""
        sid = spec.server_id
        staged = {str(x.get("id")): x for x in source.get("disks") or [] if isinstance(x, Mapping)}
        missing = [x.id for x in spec.disks if x.id not in staged]
        if missing:
            raise HypervisorError(f"migrate-in of {sid}: the source handed over no disk {', '.join(missing)}")
        exchange = self._exchange()
        self.remove(sid, spec.nics)  # leftovers of an interrupted attempt
        d = self.instance_dir(sid)
        os.makedirs(d, mode=0o700)
        try:
            # the instance as a deploy makes it (NICs, leases, config drive, boot files), then the
            # source's disk files in place of the fresh ones
            gspec, disks_out = self._guest_spec(spec, d)
            paths = dict(disks_out)
            for disk in spec.disks:
                s = staged[disk.id]
                path = paths[disk.id]
                part = path + ".part"
                exchange.download(sid, disk.id, part, sha256=str(s.get("sha256") or ""))
                if s.get("format") == "qcow2" and s.get("backing_image_id"):
                    self._rebase(part, str(s["backing_image_id"]))
                os.replace(part, path)
            guest = self.driver.create_guest(gspec, start=False)
            self.persist(sid)
        except BaseException:
            self.remove(sid, spec.nics)
            raise
        return Deployed(guest_id=guest.id, status=guest.status, disks=tuple(disks_out))

    def migrate_cleanup(self, server_id: str) -> bool:
        """The source's copy goes: guest, DHCP leases, instance dir (fine if already gone)."""
        return self.remove(server_id)

    def _rebase(self, path: str, image_id: str) -> None:
        from drivers.kvm.disks import _qemu_img

        if not self._qemu_img:
            raise HypervisorError("qemu-img not found (apt install qemu-utils): cannot take a qcow2 overlay in")
        img = self.env.images.get(image_id)
        _qemu_img(["rebase", "-u", "-f", "qcow2", "-b", img.path, "-F", img.format, path])


def _disk_path(d: str, disk: InstanceDisk) -> str:
    """The disk's file: its recorded access path if it is in the instance dir, else deploy's name."""
    p = disk.access_path
    if p and os.path.dirname(os.path.abspath(p)) == d:
        return p
    return os.path.join(d, f"disk{disk.index}.qcow2")


def _format_of(path: str) -> tuple[str, bool]:
    from drivers.kvm.disks import disk_info

    info = disk_info(path)
    return info.format, bool(info.backing_file)
