"""libvirt's default event loop, run once per process in a daemon thread.

libvirt only delivers domain events to connections opened *after* an event implementation is
registered, so ``ensure_event_loop()`` must run before ``libvirt.open`` (Host does this).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import libvirt

from drivers.base import GuestEvent, GuestStatus

__all__ = ["EVENT_STATUS", "ensure_event_loop", "to_event"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_thread: threading.Thread | None = None

# lifecycle event -> (name, the status the guest is in after it)
EVENT_STATUS: dict[int, tuple[str, GuestStatus]] = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: ("defined", GuestStatus.STOPPED),
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: ("undefined", GuestStatus.STOPPED),
    libvirt.VIR_DOMAIN_EVENT_STARTED: ("started", GuestStatus.RUNNING),
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: ("suspended", GuestStatus.PAUSED),
    libvirt.VIR_DOMAIN_EVENT_RESUMED: ("resumed", GuestStatus.RUNNING),
    libvirt.VIR_DOMAIN_EVENT_STOPPED: ("stopped", GuestStatus.STOPPED),
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: ("shutdown", GuestStatus.SHUTTING_DOWN),
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: ("pmsuspended", GuestStatus.SUSPENDED),
    libvirt.VIR_DOMAIN_EVENT_CRASHED: ("crashed", GuestStatus.CRASHED),
}

_DETAILS: dict[int, dict[int, str]] = {
    libvirt.VIR_DOMAIN_EVENT_STOPPED: {
        libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: "shutdown",
        libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED: "destroyed",
        libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED: "crashed",
        libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED: "migrated",
        libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED: "saved",
        libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED: "failed",
        libvirt.VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT: "from_snapshot",
    },
    libvirt.VIR_DOMAIN_EVENT_STARTED: {
        libvirt.VIR_DOMAIN_EVENT_STARTED_BOOTED: "booted",
        libvirt.VIR_DOMAIN_EVENT_STARTED_RESTORED: "restored",
        libvirt.VIR_DOMAIN_EVENT_STARTED_MIGRATED: "migrated",
        libvirt.VIR_DOMAIN_EVENT_STARTED_WAKEUP: "wakeup",
    },
}


def ensure_event_loop() -> None:
    """Register libvirt's default event implementation and run it in a daemon thread (once)."""
    global _thread
    with _lock:
        if _thread is not None:
            return
        libvirt.virEventRegisterDefaultImpl()
        _thread = threading.Thread(target=_run, name="libvirt-events", daemon=True)
        _thread.start()


def to_event(dom: Any, event: int, detail: int) -> GuestEvent:
    """Normalize one libvirt lifecycle callback into a GuestEvent."""
    name, status = EVENT_STATUS.get(event, (f"event-{event}", GuestStatus.UNKNOWN))
    return GuestEvent(
        guest_id=dom.UUIDString(),
        name=dom.name(),
        status=status,
        event=name,
        detail=_DETAILS.get(event, {}).get(detail, str(detail)),
    )


def lifecycle_callback(callback: Callable[[GuestEvent], None]) -> Callable[..., None]:
    """Wrap a user callback for domainEventRegisterAny; its errors are logged, never raised into libvirt."""

    def _cb(_conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        try:
            callback(to_event(dom, event, detail))
        except Exception:  # a bad consumer must not stop event delivery
            log.exception("guest event callback failed")

    return _cb


def _run() -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except libvirt.libvirtError:  # keep the loop alive; libvirt already logged it
            log.exception("libvirt event loop iteration failed")
