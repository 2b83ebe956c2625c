"""Live migration of KVM guests between two libvirt hosts (drivers.base.LiveMigratable).

    handover = target.live_migrate_prepare(spec)[1]   # target: disks, leases, config drive made
    status = source.live_migrate(server_id, handover)  # source: the running guest moved there

The target makes the instance as a deploy would (empty overlays of the same sizes on the same
images from its own cache, blank data disks, DHCP leases, config drive) but defines no guest. The
source takes its running guest's own migratable XML, points every file at the target's (paths by
disk id and by role), every interface at the target's bridge, and migrates with libvirt:
memory live, and each disk's own blocks copied into the target's overlays (NON_SHARED_INC: the
image underneath is the same bytes on both hosts). libvirt keeps the guest running on the source
until the target runs it, so a failed migration changes nothing there. After the move the source
forgets its copy (leases, files).

The hand-over names the target's libvirt URI (``migrate_uri`` of the target's agent config, e.g.
``qemu+tcp://10.0.0.2/system``) and optionally the address qemu streams to (``migrate_address``,
``tcp://10.0.0.2``). A host without ``migrate_uri`` does not declare ``live_migrate``.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from drivers.base import GuestNotFound, GuestStatus, HypervisorError, InstanceDisk, InstanceSpec

log = logging.getLogger(__name__)

__all__ = ["KvmLiveMigration"]


class KvmLiveMigration:
    """Mixin of ``KvmInstances``: the two live-migration steps (uses its env, driver, paths)."""

    if TYPE_CHECKING:  # provided by KvmInstances
        env: Any
        driver: Any

        def instance_dir(self, server_id: str) -> str: ...
        def remove(self, server_id: str, nics: Any = None) -> bool: ...
        def _guest_spec(self, spec: InstanceSpec, d: str) -> Any: ...
        def _disk_path(self, server_id: str, disk: InstanceDisk, *, existing: bool = False) -> str: ...

    def live_migrate_prepare(self, spec: InstanceSpec) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        sid = spec.server_id
        uri = str(self.env.options.get("migrate_uri") or "")
        if not uri:
            raise HypervisorError("this host takes no live migrations: set migrate_uri in its agent config")
        try:
            if self.driver.get_guest(sid).status is not GuestStatus.STOPPED:
                raise HypervisorError(f"guest {sid} already runs on this host")
        except GuestNotFound:
            pass
        self.remove(sid, spec.nics)  # leftovers of an interrupted attempt
        d = self.instance_dir(sid)
        os.makedirs(d, mode=0o700)
        try:
            gspec, disks_out = self._guest_spec(spec, d)
        except BaseException:
            self.remove(sid, spec.nics)
            raise
        handover = {
            "uri": uri, "address": str(self.env.options.get("migrate_address") or ""),
            "disks": dict(disks_out), "kernel": gspec.kernel or "", "initrd": gspec.initrd or "",
            "config_drive": gspec.config_drive or "", "serial_log": gspec.serial_log or "",
            "iso": gspec.iso or "",  # the ISO in the guest's CD-ROM drive, from this host's image cache
            # two hosts on one kernel (tests) would clash on the tap name: let libvirt pick one then
            "nics": {n.mac: [n.bridge, "" if _link_exists(n.ifname) else n.ifname] for n in gspec.nics},
        }
        log.info("guest %s: prepared here for a live migration in", sid)
        return list(disks_out), handover

    def live_migrate(self, server_id: str, target: Mapping[str, Any],
                     disks: tuple[InstanceDisk, ...] = ()) -> GuestStatus:
        import libvirt

        from drivers.kvm.guest import to_guest
        from drivers.kvm.xml import parse_disks, retarget, spec_from_xml

        uri = str(target.get("uri") or "")
        if not uri:
            raise HypervisorError("the target's hand-over names no libvirt URI")
        try:
            dom = self.driver.host.lookup(server_id)
        except GuestNotFound:
            return self._moved_already(uri, server_id)
        if not dom.isActive():
            raise HypervisorError(f"guest {server_id} is not running: use a cold migration (server-migrate)")
        d = self.instance_dir(server_id)
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)
        new_disks = {str(k): str(v) for k, v in dict(target.get("disks") or {}).items()}
        paths: dict[str, str] = {}
        for disk in disks:
            if disk.id not in new_disks:
                raise HypervisorError(f"the target prepared no file for disk {disk.id}")
            paths[self._disk_path(server_id, disk, existing=True)] = new_disks[disk.id]
        for name, role in (("config.iso", "config_drive"), ("serial.log", "serial_log")):
            if target.get(role):
                paths[os.path.join(d, name)] = str(target[role])
        iso = spec_from_xml(xml).iso
        if iso and target.get("iso"):  # an inserted ISO: the same image from the target's cache
            paths[iso] = str(target["iso"])
        for tag in ("kernel", "initrd"):
            old = _os_file(xml, tag)
            if old and target.get(tag):
                paths[old] = str(target[tag])
        nics = {str(mac).lower(): (str(v[0]), str(v[1])) for mac, v in dict(target.get("nics") or {}).items()}
        try:
            dest_xml = retarget(xml, paths=paths, nics=nics)
        except ValueError as exc:
            raise HypervisorError(f"live migration of {server_id}: {exc}") from None
        copy = [x.dev for x in parse_disks(xml) if x.device == "disk"]
        params: dict[str, Any] = {libvirt.VIR_MIGRATE_PARAM_DEST_XML: dest_xml,
                                  libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS: copy}
        if target.get("address"):
            params[libvirt.VIR_MIGRATE_PARAM_URI] = str(target["address"])
        flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
                 | libvirt.VIR_MIGRATE_NON_SHARED_INC | libvirt.VIR_MIGRATE_AUTO_CONVERGE)
        dconn = _open(uri)
        try:
            log.info("guest %s: live migration to %s (%d disk(s) copied)", server_id, uri, len(copy))
            try:
                moved = dom.migrate3(dconn, params, flags)
            except libvirt.libvirtError as exc:  # libvirt left the guest running here
                raise HypervisorError(f"live migration of {server_id} to {uri} failed: "
                                      f"{exc.get_error_message()}") from None
            status = to_guest(moved).status
        finally:
            dconn.close()
        self.remove(server_id)  # it runs there now: our leases and files go
        return status

    def _moved_already(self, uri: str, server_id: str) -> GuestStatus:
        """A redelivered migrate whose guest is gone from here: it moved if the target has it."""
        import libvirt

        from drivers.kvm.guest import to_guest

        dconn = _open(uri)
        try:
            try:
                return to_guest(dconn.lookupByUUIDString(server_id)).status
            except libvirt.libvirtError:
                raise HypervisorError(f"guest {server_id} is neither on this host nor on {uri}") from None
        finally:
            dconn.close()


def _open(uri: str) -> Any:
    import libvirt

    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise HypervisorError(f"cannot reach the target hypervisor {uri}: {exc.get_error_message()}") from None


def _os_file(xml: str, tag: str) -> str:
    import xml.etree.ElementTree as ET

    text = ET.fromstring(xml).findtext(f"os/{tag}")
    return text.strip() if text else ""


def _link_exists(name: str | None) -> bool:
    return bool(name) and os.path.exists(f"/sys/class/net/{name}")
