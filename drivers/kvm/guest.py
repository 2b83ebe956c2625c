"""One libvirt domain: lifecycle calls, and conversion to our Guest value object."""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import libvirt

from drivers.base import Guest, GuestNotFound, GuestStatus, HypervisorError

__all__ = ["STATUS_MAP", "GuestDomain", "to_guest"]

log = logging.getLogger(__name__)

STATUS_MAP: dict[int, GuestStatus] = {
    libvirt.VIR_DOMAIN_RUNNING: GuestStatus.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: GuestStatus.RUNNING,  # running, waiting on I/O
    libvirt.VIR_DOMAIN_PAUSED: GuestStatus.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: GuestStatus.SHUTTING_DOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: GuestStatus.STOPPED,
    libvirt.VIR_DOMAIN_CRASHED: GuestStatus.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: GuestStatus.SUSPENDED,
}

_logged_unmapped: set[int] = set()


def to_guest(dom: Any) -> Guest:
    """Convert a virDomain into a Guest; unmapped states become UNKNOWN (logged once)."""
    try:
        state, reason = dom.state()
        _state, max_kib, _mem_kib, vcpus, _cpu_time = dom.info()
        persistent = bool(dom.isPersistent())
        return Guest(
            id=dom.UUIDString(),
            name=dom.name(),
            status=_status(state),
            extra={
                "state": state,
                "reason": reason,
                "vcpu": vcpus,
                "memory_mb": max_kib // 1024,
                "persistent": persistent,
            },
        )
    except libvirt.libvirtError as exc:
        raise _error(exc, "?") from None


def _status(state: int) -> GuestStatus:
    status = STATUS_MAP.get(state)
    if status is None:
        if state not in _logged_unmapped:
            _logged_unmapped.add(state)
            log.warning("libvirt domain state %s is not mapped; reporting unknown", state)
        return GuestStatus.UNKNOWN
    return status


def _error(exc: libvirt.libvirtError, guest_id: str) -> Exception:
    if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
        return GuestNotFound(guest_id)
    return HypervisorError(exc.get_error_message() or str(exc))


class GuestDomain:
    """Lifecycle of one domain. Each call is idempotent where the target state already holds."""

    POLL_INTERVAL: ClassVar[float] = 0.1

    def __init__(self, dom: Any) -> None:
        self.dom = dom
        self.id: str = dom.UUIDString()

    def state(self) -> int:
        try:
            return int(self.dom.state()[0])
        except libvirt.libvirtError as exc:
            raise _error(exc, self.id) from None

    def status(self) -> GuestStatus:
        return _status(self.state())

    def to_guest(self) -> Guest:
        return to_guest(self.dom)

    def xml(self, flags: int = 0) -> str:
        try:
            return str(self.dom.XMLDesc(flags))
        except libvirt.libvirtError as exc:
            raise _error(exc, self.id) from None

    def start(self) -> None:
        state = self.state()
        if state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED):
            return
        if state == libvirt.VIR_DOMAIN_PAUSED:
            self._call("resume")
            return
        self._call("create")

    def stop(self, timeout: float) -> bool:
        """Ask the guest to shut down (ACPI); destroy it if it is still up after ``timeout`` s.

        Returns True when the guest shut down by itself, False when it had to be forced.
        """
        if self.state() == libvirt.VIR_DOMAIN_SHUTOFF:
            return True
        if timeout > 0:
            try:
                self.dom.shutdown()
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    raise GuestNotFound(self.id) from None
                log.info("graceful shutdown of %s refused (%s); forcing", self.id, exc.get_error_message())
            else:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    if self._inactive():
                        return True
                    time.sleep(self.POLL_INTERVAL)
        self.force_stop()
        return False

    def force_stop(self) -> None:
        if self._inactive():
            return
        try:
            self.dom.destroy()
        except libvirt.libvirtError as exc:
            if not self._inactive():  # lost a race with the guest powering off: fine
                raise _error(exc, self.id) from None

    def reboot(self) -> None:
        self._require_running("reboot")
        self._call("reboot", 0)

    def reset(self) -> None:
        self._require_running("reset")
        self._call("reset", 0)

    def suspend(self) -> None:
        state = self.state()
        if state == libvirt.VIR_DOMAIN_PAUSED:
            return
        self._require_running("suspend")
        self._call("suspend")

    def resume(self) -> None:
        state = self.state()
        if state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED):
            return
        if state != libvirt.VIR_DOMAIN_PAUSED:
            raise HypervisorError(f"guest {self.id} is {_status(state).value}, not paused")
        self._call("resume")

    def undefine(self) -> None:
        """Destroy (if running) and remove the domain definition."""
        self.force_stop()
        try:
            if not self.dom.isPersistent():
                return  # a transient domain vanished with destroy
            flags = (
                libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
            )
            try:
                self.dom.undefineFlags(flags)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return
                self.dom.undefine()  # older drivers reject some flags
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return
            raise HypervisorError(exc.get_error_message()) from None

    # --- private ------------------------------------------------------------------------------

    def _inactive(self) -> bool:
        try:
            return not self.dom.isActive()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return True  # transient domain gone
            raise HypervisorError(exc.get_error_message()) from None

    def _require_running(self, op: str) -> None:
        state = self.state()
        if state not in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED):
            raise HypervisorError(f"cannot {op} guest {self.id}: it is {_status(state).value}")

    def _call(self, method: str, *args: Any) -> None:
        try:
            getattr(self.dom, method)(*args)
        except libvirt.libvirtError as exc:
            raise _error(exc, self.id) from None
