"""The server status machine: ONE declared table of (status, event) -> status.

Actions (``start``, ``stop``...) are events checked when the API accepts them: a missing entry is
a 400 ``InvalidStatusError`` naming the status. Tasks move the server along with progress events
(``scheduled``, ``deployed``, ``started``, ``*_fail``...) through the same table, so no code sets a
status the table does not allow. A second action while a task holds the server is refused
before this table is consulted (409, see ``guard_busy``).
"""
from __future__ import annotations

from typing import Any

from core.errors import InvalidStatusError, ResourceBusyError

STABLE = ("ready", "running", "suspend", "unknown", "sched_fail", "net_fail", "disk_fail", "deploy_fail",
          "start_fail", "stop_fail", "delete_fail", "change_config_fail", "migrate_fail", "rebuild_root_fail")
FAILED_CREATE = ("sched_fail", "net_fail", "disk_fail", "deploy_fail")

_T: dict[tuple[str, str], str] = {}


def _add(froms: tuple[str, ...] | str, event: str, to: str) -> None:
    for f in (froms,) if isinstance(froms, str) else froms:
        _t_key = (f, event)
        if _t_key in _T and _T[_t_key] != to:
            raise ValueError(f"conflicting transition {f} --{event}-->")
        _T[_t_key] = to


# ---- create ------------------------------------------------------------------------------------
_add("init", "schedule", "schedule")
_add("schedule", "scheduled", "network")
_add("schedule", "sched_fail", "sched_fail")
_add("network", "net_ok", "disk")
_add("network", "net_fail", "net_fail")
_add("disk", "disk_ok", "deploying")
_add("disk", "disk_fail", "disk_fail")
_add("deploying", "deployed", "ready")
_add("deploying", "deploy_fail", "deploy_fail")
_add("ready", "boot", "running")  # deploy with auto_start: the agent started it
# ---- power actions (API events) and their progress -----------------------------------------------
_add(("ready", "start_fail", "unknown"), "start", "start_start")
_add("start_start", "starting", "starting")
_add(("start_start", "starting"), "started", "running")
_add(("start_start", "starting"), "start_fail", "start_fail")
_add(("running", "stop_fail", "unknown", "start_fail"), "stop", "start_stop")
_add("start_stop", "stopping", "stopping")
_add(("start_stop", "stopping"), "stopped", "ready")
_add(("start_stop", "stopping"), "stop_fail", "stop_fail")
_add(("running", "ready", "start_fail", "stop_fail", "unknown"), "restart", "restarting")
_add("restarting", "started", "running")
_add("restarting", "start_fail", "start_fail")
_add("running", "reset", "resetting")
_add("resetting", "started", "running")
_add("resetting", "reset_fail", "unknown")
_add("running", "suspend", "suspending")
_add("suspending", "suspended", "suspend")
_add("suspending", "suspend_fail", "unknown")
_add("suspend", "resume", "resuming")
_add("resuming", "started", "running")
_add("resuming", "resume_fail", "unknown")
# syncstatus: from any settled status; the agent's answer sets the status via "synced:<status>"
_add(STABLE, "syncstatus", "syncing")
for _s in ("ready", "running", "suspend", "unknown"):
    _add("syncing", f"synced:{_s}", _s)
_add("syncing", "sync_fail", "unknown")
# the host agent observed the guest (lifecycle event, periodic sync, host offline) while no task held it
for _s in ("ready", "running", "suspend", "unknown"):
    _add(("ready", "running", "suspend", "unknown"), f"observed:{_s}", _s)
# ---- configuration ------------------------------------------------------------------------------
_add(("ready", "change_config_fail"), "change-config", "change_config")
_add("change_config", "configured", "ready")
_add("change_config", "change_config_fail", "change_config_fail")
_add(("ready", "migrate_fail"), "migrate", "migrating")
_add("migrating", "migrated", "ready")
_add("migrating", "migrate_fail", "migrate_fail")
# live migration: the guest runs throughout; a failure leaves it running where it was (with the reason)
_add("running", "live-migrate", "live_migrating")
_add("live_migrating", "live_migrated", "running")
_add("live_migrating", "live_migrate_fail", "running")
_add(("ready", "deploy_fail", "rebuild_root_fail"), "rebuild-root", "rebuild_root")
_add("rebuild_root", "rebuilt", "ready")
_add("rebuild_root", "rebuild_root_fail", "rebuild_root_fail")
# save-image / disk-save: a stopped server's disk read by its host; ready again either way
_add("ready", "save-image", "save_image")
_add("save_image", "saved", "ready")
_add("save_image", "save_image_fail", "ready")
# disks: the server keeps its status while a disk is attached or detached
for _s in ("ready", "running"):
    _add(_s, "attachdisk", _s)
    _add(_s, "detachdisk", _s)
    _add(_s, "attachnetwork", _s)  # ... and a NIC
    _add(_s, "detachnetwork", _s)
# ---- delete ------------------------------------------------------------------------------------
_add((*STABLE, "init", "schedule"), "delete", "deleting")
_add("deleting", "delete_fail", "delete_fail")

TRANSITIONS: dict[tuple[str, str], str] = dict(_T)
ACTIONS = ("start", "stop", "restart", "reset", "suspend", "resume", "syncstatus", "change-config", "migrate",
           "live-migrate", "rebuild-root", "attachdisk", "detachdisk", "delete", "save-image",
           "attachnetwork", "detachnetwork")


def next_status(status: str, event: str) -> str | None:
    return TRANSITIONS.get((status, event))


def allowed_from(event: str) -> list[str]:
    return sorted(f for (f, e) in TRANSITIONS if e == event)


def check(server: Any, event: str) -> str:
    """The status ``event`` leads to from the server's status, or a 400 naming both."""
    to = TRANSITIONS.get((server.status, event))
    if to is None:
        allowed = ", ".join(allowed_from(event)) or "none"
        raise InvalidStatusError(f"cannot {event} server {server.name} in status {server.status} "
                                 f"(allowed: {allowed})")
    return to


def _move(server: Any, to: str) -> None:
    # a reason explains the status it was given with; the next status needs its own (or none)
    if to != server.status and getattr(server, "status_reason", None):
        server.status_reason = ""
    server.status = to


def apply(server: Any, event: str) -> str:
    _move(server, check(server, event))
    return str(server.status)


def apply_if(server: Any, event: str) -> bool:
    """Progress events from tasks: move if the table allows it, otherwise leave the status alone."""
    to = TRANSITIONS.get((server.status, event))
    if to is None:
        return False
    _move(server, to)
    return True


def set_reason(server: Any, reason: str) -> None:
    """Why the server is in its current status (``server-show`` prints it); cleared by the next move."""
    if hasattr(server, "status_reason"):
        server.status_reason = reason[:2000]


def guard_busy(row: Any, kind: str = "server") -> None:
    """No second action while a task works on the resource (the race: two starts in flight)."""
    if getattr(row, "active_task_id", None):
        raise ResourceBusyError(f"{kind} {row.name} is busy with task {row.active_task_id}; retry when it ends")
