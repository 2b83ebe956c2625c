"""Work item kinds (queued by core/region/tasks/**) → driver calls → the report's body.

A handler returns the result dict; raising makes the report ``{"__status__": "error",
"__reason__": <message>}`` so the region's task fails cleanly with that reason.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from core.agent.guests import GuestBuilder
from drivers.base import GuestNotFound, GuestStatus, HypervisorError

# hypervisor status -> the server status the region keeps (synced:<status> in its state table)
SERVER_STATUS = {GuestStatus.RUNNING: "running", GuestStatus.STOPPED: "ready", GuestStatus.CRASHED: "ready",
                 GuestStatus.PAUSED: "suspend", GuestStatus.SUSPENDED: "suspend"}

Handler = Callable[[GuestBuilder, dict[str, Any]], dict[str, Any]]


def _sid(p: dict[str, Any]) -> str:
    sid = (p.get("server") or {}).get("id")
    if not sid:
        raise HypervisorError("work item has no server id")
    return str(sid)


def deploy(b: GuestBuilder, p: dict[str, Any]) -> dict[str, Any]:
    return b.deploy(p)


def delete(b: GuestBuilder, p: dict[str, Any]) -> dict[str, Any]:
    existed = b.remove(_sid(p))
    return {"deleted": existed}


def start(b: GuestBuilder, p: dict[str, Any]) -> dict[str, Any]:
    b.driver.start_guest(_sid(p))
    return {"status": "running"}


def stop(b: GuestBuilder, p: dict[str, Any]) -> dict[str, Any]:
    timeout = 0.0 if p.get("is_force") else float(p.get("timeout_secs") or b.cfg.stop_timeout_s)
    b.driver.stop_guest(_sid(p), timeout=timeout)
    return {"status": "ready"}


def restart(b: GuestBuilder, p: dict[str, Any]) -> dict[str, Any]:
    sid = _sid(p)
    if b.driver.get_guest(sid).status is GuestStatus.RUNNING:
        b.driver.reboot_guest(sid)
    else:
        b.driver.start_guest(sid)
    return {"status": "running"}


def reset(b: GuestBuilder, p: dict[str, Any]) -> dict[str, Any]:
    b.driver.reset_guest(_sid(p))
    return {"status": "running"}


def suspend(b: GuestBuilder, p: dict[str, Any]) -> dict[str, Any]:
    b.driver.suspend_guest(_sid(p))
    return {"status": "suspend"}


def resume(b: GuestBuilder, p: dict[str, Any]) -> dict[str, Any]:
    b.driver.resume_guest(_sid(p))
    return {"status": "running"}


def status(b: GuestBuilder, p: dict[str, Any]) -> dict[str, Any]:
    try:
        g = b.driver.get_guest(_sid(p))
    except GuestNotFound:
        return {"status": "unknown", "reason": "no such guest on this host"}
    return {"status": SERVER_STATUS.get(g.status, "unknown"), "guest_status": g.status.value}


def change_config(b: GuestBuilder, p: dict[str, Any]) -> dict[str, Any]:
    """New vCPU/memory for a stopped guest: redefine the domain from its own XML."""
    from drivers.kvm.xml import spec_from_xml

    sid = _sid(p)
    g = b.driver.get_guest(sid)
    if g.status is not GuestStatus.STOPPED:
        raise HypervisorError(f"guest {sid} is {g.status.value}: stop it before changing its configuration")
    dom = b.driver.host.lookup(sid)
    spec = dataclasses.replace(spec_from_xml(dom.XMLDesc(0)), vcpu=int(p["vcpu_count"]),
                               memory_mb=int(p["vmem_size"]))
    b.driver.host.conn().defineXML(b.driver.domain_xml(spec))
    return {"vcpu_count": spec.vcpu, "vmem_size": spec.memory_mb}


HANDLERS: dict[str, Handler] = {
    "guest-deploy": deploy,
    "guest-delete": delete,
    "guest-start": start,
    "guest-stop": stop,
    "guest-restart": restart,
    "guest-reset": reset,
    "guest-suspend": suspend,
    "guest-resume": resume,
    "guest-status": status,
    "guest-change-config": change_config,
}


def handle(b: GuestBuilder, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    fn = HANDLERS.get(kind)
    if fn is None:
        raise HypervisorError(f"this agent does not handle {kind} work items yet")
    return fn(b, payload)
