"""KvmDriver: the HypervisorDriver protocol over libvirt (qemu:///system, or test:/// for tests)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, ClassVar

import libvirt

from drivers.base import (
    Capability,
    DiskSpec,
    Guest,
    GuestEvent,
    GuestNotFound,
    GuestSpec,
    GuestStats,
    HostEnv,
    HostFacts,
    HypervisorError,
    InvalidSpec,
    require,
)
from drivers.kvm.events import lifecycle_callback
from drivers.kvm.guest import GuestDomain, to_guest
from drivers.kvm.host import Host
from drivers.kvm.xml import (
    DomainDisk,
    build_domain_xml,
    disk_device_xml,
    free_target,
    parse_devices,
    parse_disks,
    with_disk,
    without_disk,
)

__all__ = ["KvmDriver"]

log = logging.getLogger(__name__)


class KvmDriver:
    """Guests as libvirt domains.

    Example::

        drv = KvmDriver(uri="test:///default")
        g = drv.create_guest(GuestSpec(name="vm1", uuid=str(uuid4()), vcpu=1, memory_mb=256))
        drv.stop_guest(g.id, timeout=10)
        drv.delete_guest(g.id)

    ``instances_dir``: files of a deleted guest (disks, config drive, serial log) that live under
    it are removed with the guest; files elsewhere (the image cache, say) are never touched.
    """

    name: ClassVar[str] = "kvm"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.GRACEFUL_STOP,
            Capability.REBOOT,
            Capability.RESET,
            Capability.SUSPEND,
            Capability.LIFECYCLE_EVENTS,
            Capability.CONFIG_DRIVE,
            Capability.DIRECT_KERNEL_BOOT,
            Capability.SERIAL_LOG,
            Capability.DISK_RESIZE,
            Capability.CHANGE_CONFIG,
            Capability.ATTACH_DISK,
            Capability.ATTACH_DISK_HOT,
            Capability.REBUILD_ROOT,
            Capability.COLD_MIGRATE,  # through the controller (drivers/kvm/migration.py)
            Capability.VNC,  # password-less on loopback/management address, reached via the agent's proxy
            Capability.SERIAL_CONSOLE,  # the first serial port as a pty (its output still logged)
            Capability.SNAPSHOT,  # qcow2 internal snapshots (drivers/kvm/snapshots.py)
            Capability.SAVE_IMAGE,  # flattened qcow2 into glance (drivers/kvm/saveimage.py)
            Capability.ATTACH_NIC,
            Capability.ATTACH_NIC_HOT,
            Capability.CDROM,  # an ISO drive and per-device boot order (drivers/kvm/cdrom.py)
            Capability.CDROM_HOT,  # a media change in a running guest (updateDeviceFlags)
            Capability.GUEST_AGENT,  # a qemu-ga channel in every guest: setUserPassword while it runs
            Capability.LIVE_MIGRATE,  # libvirt to libvirt (drivers/kvm/live.py), where the host names its URI
        }
    )

    @classmethod
    def for_host(cls, env: HostEnv) -> Any:
        """The driver as an agent hosts it (drivers.base.HostedDriver) on ``env.uri``."""
        from drivers.kvm.instances import KvmInstances

        domain_type = env.domain_type
        if domain_type == "auto" and env.uri.startswith("test:"):
            domain_type = "test"
        drv = cls(uri=env.uri, domain_type=domain_type, storage_paths=(env.data_dir,),
                  instances_dir=env.instances_dir)
        return KvmInstances(drv, env)

    def __init__(
        self,
        uri: str = "qemu:///system",
        *,
        domain_type: str = "auto",
        machine: str = "pc",
        storage_paths: tuple[str, ...] = (),
        instances_dir: str | None = None,
        sysfs_root: str = "/sys",
    ) -> None:
        if instances_dir is not None and not os.path.isabs(instances_dir):
            raise InvalidSpec(f"instances_dir must be absolute, got {instances_dir!r}")
        self.host = Host(uri, domain_type=domain_type, storage_paths=storage_paths, sysfs_root=sysfs_root)
        self.machine = machine
        self.instances_dir = os.path.realpath(instances_dir) if instances_dir else None
        self._callbacks: list[int] = []

    # --- HypervisorDriver ---------------------------------------------------------------------

    def host_facts(self) -> HostFacts:
        return self.host.facts()

    def list_guests(self) -> list[Guest]:
        guests = []
        for dom in self.host.domains():
            try:
                guests.append(to_guest(dom))
            except GuestNotFound:
                continue  # vanished between list and info
        return guests

    def get_guest(self, guest_id: str) -> Guest:
        return to_guest(self.host.lookup(guest_id))

    def guest_stats(self) -> list[GuestStats]:
        """Every guest's counters in one bulk call (drivers/kvm/stats.py)."""
        from drivers.kvm.stats import guest_stats

        try:
            return guest_stats(self.host.conn())
        except libvirt.libvirtError as exc:
            raise HypervisorError(exc.get_error_message()) from None

    def domain_xml(self, spec: GuestSpec) -> str:
        """The XML create_guest would define for ``spec`` on this host."""
        return build_domain_xml(spec, domain_type=self.host.domain_type(), machine=self.machine)

    def create_guest(self, spec: GuestSpec, *, start: bool = True) -> Guest:
        if spec.config_drive:
            require(self, Capability.CONFIG_DRIVE, "config_drive")
        self._check_free(spec)
        xml = self.domain_xml(spec)
        conn = self.host.conn()
        try:
            dom = conn.defineXML(xml)
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"define {spec.name}: {exc.get_error_message()}") from None
        if start:
            try:
                dom.create()
            except libvirt.libvirtError as exc:
                # leave nothing half-made behind: a failed create is no guest at all
                msg = exc.get_error_message()
                try:
                    dom.undefine()
                except libvirt.libvirtError:
                    log.warning("could not undefine %s after failed start", spec.name)
                raise HypervisorError(f"start {spec.name}: {msg}") from None
        return to_guest(dom)

    def start_guest(self, guest_id: str) -> None:
        self._guest(guest_id).start()

    def stop_guest(self, guest_id: str, *, timeout: float = 60.0) -> None:
        if timeout < 0:
            raise InvalidSpec("stop timeout must be >= 0")
        graceful = self._guest(guest_id).stop(timeout)
        if not graceful:
            log.info("guest %s did not shut down within %.0f s; destroyed", guest_id, timeout)

    def reboot_guest(self, guest_id: str) -> None:
        require(self, Capability.REBOOT, "reboot")
        self._guest(guest_id).reboot()

    def reset_guest(self, guest_id: str) -> None:
        require(self, Capability.RESET, "reset")
        self._guest(guest_id).reset()

    def suspend_guest(self, guest_id: str) -> None:
        require(self, Capability.SUSPEND, "suspend")
        self._guest(guest_id).suspend()

    def resume_guest(self, guest_id: str) -> None:
        require(self, Capability.SUSPEND, "resume")
        self._guest(guest_id).resume()

    def delete_guest(self, guest_id: str) -> None:
        """Destroy and undefine; then remove the guest's files under ``instances_dir``."""
        g = self._guest(guest_id)
        devices = parse_devices(g.xml())
        g.undefine()
        files = [*devices.disk_paths, *([devices.serial_log] if devices.serial_log else [])]
        for path in files:
            if self._owned(path):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    log.warning("could not remove %s of deleted guest %s: %s", path, guest_id, exc)

    def watch_events(self, callback: Callable[[GuestEvent], None]) -> None:
        """Call ``callback(GuestEvent)`` from the libvirt event thread on every lifecycle change."""
        require(self, Capability.LIFECYCLE_EVENTS, "watch_events")
        conn = self.host.conn()
        try:
            cb_id = conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle_callback(callback), None
            )
        except libvirt.libvirtError as exc:
            raise HypervisorError(exc.get_error_message()) from None
        self._callbacks.append(cb_id)

    def close(self) -> None:
        conn: Any = self.host._conn
        for cb_id in self._callbacks:
            try:
                if conn is not None:
                    conn.domainEventDeregisterAny(cb_id)
            except libvirt.libvirtError:
                pass
        self._callbacks.clear()
        self.host.close()

    # --- extensions ---------------------------------------------------------------------------

    def guest_taps(self, guest_id: str) -> tuple[str, ...]:
        """The tap devices of a running guest (libvirt names them when the spec did not)."""
        return parse_devices(self._guest(guest_id).xml()).taps

    def guest_disks(self, guest_id: str, *, live: bool) -> tuple[DomainDisk, ...]:
        """The disks of the guest's running state (``live``) or of its persistent definition."""
        flags = 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE
        return parse_disks(self._guest(guest_id).xml(flags))

    def attach_disk(self, guest_id: str, disk: DiskSpec, *, index: int, live: bool) -> str:
        """Add ``disk`` to the definition, and to the running guest too if ``live`` (a hot-plug);
        returns its target device. The device is the ``index``-th of its bus (vdb for 1) unless taken.

        Idempotent: where the disk's file is already attached (definition or running guest) it stays.
        """
        require(self, Capability.ATTACH_DISK_HOT if live else Capability.ATTACH_DISK, "attach_disk")
        dom = self.host.lookup(guest_id)
        config = {d.path: d for d in self.guest_disks(guest_id, live=False)}
        running = {d.path: d for d in self.guest_disks(guest_id, live=True)} if live else {}
        have = config.get(disk.path) or running.get(disk.path)
        if have is not None:
            dev = have.dev
        else:
            dev = free_target(disk.bus, {d.dev for d in (*config.values(), *running.values())}, index)
        xml = disk_device_xml(disk, dev)
        try:
            if live and disk.path not in running:
                flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
                if disk.path not in config:
                    flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
                dom.attachDeviceFlags(xml, flags)
            elif disk.path not in config:
                self._change_config(dom, dom.attachDeviceFlags, xml, lambda x: with_disk(x, disk, dev))
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"attach {disk.path} to guest {guest_id}: {exc.get_error_message()}") from None
        return dev

    def detach_disk(self, guest_id: str, path: str, *, live: bool, timeout: float = 10.0) -> bool:
        """Remove the disk whose file is ``path`` from the definition, and from the running guest if
        ``live`` (waiting up to ``timeout`` s for the guest to let go of it); False if it was not attached.
        """
        require(self, Capability.ATTACH_DISK_HOT if live else Capability.ATTACH_DISK, "detach_disk")
        dom = self.host.lookup(guest_id)
        config = {d.path: d for d in self.guest_disks(guest_id, live=False)}
        running = {d.path: d for d in self.guest_disks(guest_id, live=True)} if live else {}
        have = config.get(path) or running.get(path)
        if have is None:
            return False
        xml = disk_device_xml(DiskSpec(path=path, bus=have.bus, device=have.device), have.dev)
        try:
            if path in running:
                self._unplug(dom, guest_id, xml, path, timeout)
            if path in config:
                self._change_config(dom, dom.detachDeviceFlags, xml, lambda x: without_disk(x, path))
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"detach {path} from guest {guest_id}: {exc.get_error_message()}") from None
        return True

    # --- private ------------------------------------------------------------------------------

    def _change_config(self, dom: Any, call: Callable[[str, int], Any], device_xml: str,
                       edit: Callable[[str], str]) -> None:
        """Change a guest's persistent definition by one device: libvirt's device ``call``
        (attachDeviceFlags/detachDeviceFlags) where the connection has it, else a redefinition from
        the edited inactive XML (libvirt's test driver has no device calls)."""
        try:
            call(device_xml, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            return
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                raise
        self.host.conn().defineXML(edit(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))

    def _unplug(self, dom: Any, guest_id: str, device_xml: str, path: str, timeout: float) -> None:
        """Hot-unplug: the guest OS must acknowledge it (ACPI eject), and one that was still booting
        may never see the first request; ask again every few seconds, as Nova does, until ``timeout``."""
        import time

        end = time.monotonic() + timeout
        first = True
        while True:
            try:
                dom.detachDeviceFlags(device_xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            except libvirt.libvirtError:
                if first and self._live_has(guest_id, path):
                    raise
                # a repeated request qemu refuses ("already in the process of unplug"): keep waiting
            first = False
            again = min(time.monotonic() + 3.0, end)
            while time.monotonic() < again:
                if not self._live_has(guest_id, path):
                    return
                time.sleep(0.1)
            if time.monotonic() >= end:
                raise HypervisorError(f"guest {guest_id} did not release {path} within {timeout:.0f} s "
                                      "(the guest OS must support PCI hot-unplug; is the disk in use?)")

    def _live_has(self, guest_id: str, path: str) -> bool:
        return any(d.path == path for d in self.guest_disks(guest_id, live=True))

    def _guest(self, guest_id: str) -> GuestDomain:
        return GuestDomain(self.host.lookup(guest_id))

    def _check_free(self, spec: GuestSpec) -> None:
        for key in (spec.uuid, spec.name):
            try:
                dom = self.host.lookup(key)
            except GuestNotFound:
                continue
            raise InvalidSpec(f"a guest {dom.name()} ({dom.UUIDString()}) already uses {key}")

    def _owned(self, path: str) -> bool:
        if not self.instances_dir:
            return False
        real = os.path.realpath(path)
        return (
            os.path.commonpath([real, self.instances_dir]) == self.instances_dir
            and real != self.instances_dir
        )
