"""What an action on a server needs of its host before any task starts: a driver that declares the
capability (a 400 naming host, driver and capability) and an agent online (a 409). Used by every
module that starts a task on a server's host (servers, disks' snapshots, NICs, CD-ROMs, ...).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.errors import ConflictError
from core.region.models import Host


def guard_capability(session: Session, row: Any, action: str) -> None:
    """An action the server's host driver does not declare is a 400 naming host, driver and
    capability, before any task starts (capabilities are what the host registered: data, not probes)."""
    from core.errors import UnsupportedOperationError
    from core.host_protocol import ACTION_CAPABILITY
    from drivers.base import Capability

    cap = ACTION_CAPABILITY.get(action)
    host = session.get(Host, row.host_id) if row.host_id else None
    if cap is None or host is None:
        return
    declared = set(host.capabilities or ())
    if action in ("attachdisk", "detachdisk") and row.status == "running":
        cap = Capability.ATTACH_DISK_HOT  # plugging a disk into a running guest is its own capability
    if action in ("attachnetwork", "detachnetwork") and row.status == "running":
        cap = Capability.ATTACH_NIC_HOT  # ... and so is a NIC
    if action in ("insertiso", "ejectiso") and row.status == "running":
        cap = Capability.CDROM_HOT  # ... and a media change
    if action == "reset-password" and row.status == "running":
        cap = Capability.GUEST_AGENT  # a running guest's password goes through the qemu guest agent
    if cap.value not in declared:
        driver = host.driver or "unknown"
        cold = {Capability.ATTACH_DISK_HOT: Capability.ATTACH_DISK, Capability.ATTACH_NIC_HOT: Capability.ATTACH_NIC,
                Capability.CDROM_HOT: Capability.CDROM, Capability.GUEST_AGENT: Capability.CONFIG_DRIVE}
        hint = " (stop the server first)" if cap in cold and cold[cap].value in declared else ""
        raise UnsupportedOperationError(
            f"{action}: host {host.name} (driver {driver}) does not support {cap.value}{hint}",
            host=host.name, driver=driver, capability=cap.value)


def guard_host_online(session: Session, row: Any) -> None:
    """An action needs the server's host agent: an offline host is a 409 saying so (not a queued task)."""
    host = session.get(Host, row.host_id) if row.host_id else None
    if host is not None and host.host_status != "online":
        seen = host.last_ping_at.isoformat(timespec="seconds") if host.last_ping_at else "never"
        raise ConflictError(f"host {host.name} of server {row.name} is {host.host_status} (last ping {seen}): "
                            "its agent cannot act now; retry when the host is back online")
