"""A KVM guest's CD-ROM drive and boot order: ``server-insert-iso`` / ``server-eject-iso`` (an ISO
from the image cache in the drive; a running guest sees a media change where the host can do
device calls) and ``server-set-boot-index`` (per-device ``<boot order>``, for a stopped guest).

The ISO drive is an IDE cdrom told from the config drive by its serial (drivers/kvm/xml.py); every
guest is deployed with it (empty). A guest deployed before that gets it the first time an ISO goes
in while it is stopped (IDE cannot be hot-plugged, so such a guest running is refused, naming the fix).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from drivers.base import Capability, GuestStatus, HypervisorError, InstanceSpec

log = logging.getLogger(__name__)


class KvmCdrom:
    """Mixed into KvmInstances (drivers/kvm/instances.py): uses its driver, env and helpers."""

    driver: Any
    env: Any
    capabilities: frozenset[Capability]

    def change_cdrom(self, server_id: str, image_id: str | None) -> bool:
        """Put ISO image ``image_id`` in the guest's drive (None: eject it); whether the running guest
        saw it (a media change) rather than the definition alone (a stopped guest)."""
        import libvirt

        from drivers.kvm.xml import iso_drive_xml, spec_from_xml

        path = self.env.images.get(image_id).path if image_id else ""
        dom = self.driver.host.lookup(server_id)  # GuestNotFound: nothing here
        status = self.driver.get_guest(server_id).status
        if status is not GuestStatus.STOPPED:
            if Capability.CDROM_HOT not in self.capabilities:
                raise HypervisorError(f"guest {server_id} is {status.value} and this host cannot change a running "
                                      "guest's media: stop it first")
            dev = iso_drive_xml(dom.XMLDesc(0), path)
            if dev is None:
                raise HypervisorError(f"guest {server_id} runs without a CD-ROM drive (IDE cannot be hot-plugged): "
                                      "stop it, insert the ISO, start it")
            try:
                dom.updateDeviceFlags(dev, libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            except libvirt.libvirtError as exc:
                raise HypervisorError(f"media change in guest {server_id}: {exc.get_error_message()}") from None
            live = True
        else:
            spec = spec_from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            self._redefine(dataclasses.replace(spec, iso=path))
            live = False
        self.persist(server_id)  # type: ignore[attr-defined]
        log.info("guest %s: cdrom %s%s", server_id, path or "ejected", " (live)" if live else "")
        return live

    def set_boot_order(self, spec: InstanceSpec) -> None:
        """The stopped guest boots from ``spec.boot_order`` ("disk<index>" of the region's disks,
        "cdrom"), in that order; a disk or the drive not named is not booted from."""
        import libvirt

        from drivers.kvm.xml import spec_from_xml

        sid = spec.server_id
        status = self.driver.get_guest(sid).status
        if status is not GuestStatus.STOPPED:
            raise HypervisorError(f"guest {sid} is {status.value}: stop it to change its boot order")
        gspec = spec_from_xml(self.driver.host.lookup(sid).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        where = {os.path.realpath(d.path): n for n, d in enumerate(gspec.disks)}
        by_index = {d.index: d for d in spec.disks}
        order: list[str] = []
        for dev in spec.boot_order:
            if dev == "cdrom":
                order.append(dev)
                continue
            disk = by_index.get(int(dev[4:])) if dev.startswith("disk") and dev[4:].isdigit() else None
            if disk is None:
                raise HypervisorError(f"boot order: guest {sid} has no {dev}")
            pos = where.get(os.path.realpath(self._disk_path(sid, disk, existing=True)))  # type: ignore[attr-defined]
            if pos is None:
                raise HypervisorError(f"boot order: disk {disk.id} is not in guest {sid}'s definition")
            order.append(f"disk{pos}")
        iso = gspec.iso if gspec.iso is not None or "cdrom" not in order else ""  # an empty drive to boot from
        self._redefine(dataclasses.replace(gspec, iso=iso, boot_order=tuple(order)))
        self.persist(sid)  # type: ignore[attr-defined]

    def _redefine(self, gspec: Any) -> None:
        try:
            self.driver.host.conn().defineXML(self.driver.domain_xml(gspec))
        except Exception as exc:  # libvirt refusing the definition: the old one stays
            raise HypervisorError(f"re-define guest {gspec.uuid}: {exc}") from None
