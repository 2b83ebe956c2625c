"""KvmDriver: the HypervisorDriver protocol over libvirt (qemu:///system, or test:/// for tests)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, ClassVar

import libvirt

from drivers.base import (
    Capability,
    Guest,
    GuestEvent,
    GuestNotFound,
    GuestSpec,
    HostEnv,
    HostFacts,
    HypervisorError,
    InvalidSpec,
    require,
)
from drivers.kvm.events import lifecycle_callback
from drivers.kvm.guest import GuestDomain, to_guest
from drivers.kvm.host import Host
from drivers.kvm.xml import build_domain_xml, parse_devices

__all__ = ["VERSION", "KvmDriver"]

VERSION = "1.1"  # of this driver's host contract implementation (reported at registration)

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

    # --- private ------------------------------------------------------------------------------

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
