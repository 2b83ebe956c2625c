"""A server's CD-ROM and boot order (Cloudpods' names): ``server-insert-iso`` (insertiso),
``server-eject-iso`` (ejectiso), ``server-iso`` (the ISO in the drive), ``server-set-boot-index``
(set-boot-index) and ``server-create --cdrom``.

What is in the drive and the boot order live in the server's ``create_spec`` (``cdrom``,
``boot_order``): one drive per server, so no table of its own; every payload describing the guest
carries them (core.region.tasks._common.agent_payload), so a rebuild or a migration keeps them.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.errors import InputParameterError, InvalidStatusError
from core.region import statemachine as sm
from core.region.models import Disk, Server
from core.tasks.engine import submit


def iso_image(session: Session, cred: Credential, ref: Any, what: str = "image_id") -> dict[str, Any]:
    """The ISO image ``ref`` names (visible to the caller, active, disk format iso), as the server keeps it."""
    from core.region.images import check_image

    if not isinstance(ref, str) or not ref:
        raise InputParameterError(f"{what}: required (an ISO image's id or name)")
    img = check_image(session, ref, cred)
    if img.disk_format != "iso":
        raise InputParameterError(f"{what}: image {img.name} is {img.disk_format or 'of no disk format'}, "
                                  "not an ISO (upload it with --format iso)")
    return {"image_id": img.id, "name": img.name, "size": img.size_mb}


def cdrom_of(server: Any) -> dict[str, Any]:
    """Cloudpods' ``server-iso`` view: the ISO in the drive, or an empty drive."""
    c = (server.create_spec or {}).get("cdrom") or {}
    return {"image_id": c.get("image_id", ""), "name": c.get("name", ""), "size": c.get("size", 0),
            "status": "inserted" if c.get("image_id") else "empty"}


def _guard(session: Session, server: Server, action: str, allowed: tuple[str, ...]) -> None:
    from core.region.guards import guard_capability, guard_host_online

    if server.pending_deleted:
        raise InvalidStatusError(f"server {server.name} is in the recycle bin: cancel-delete it first")
    if not server.host_id:
        raise InvalidStatusError(f"server {server.name} is not deployed on a host")
    sm.guard_busy(server)
    if server.status not in allowed:
        hint = "stop the server first" if "running" not in allowed else "wait until it is ready or running"
        raise InvalidStatusError(f"cannot {action} server {server.name} in status {server.status}: {hint} "
                                 f"(allowed: {', '.join(allowed)})")
    guard_host_online(session, server)
    guard_capability(session, server, action)


def _submit(session: Session, cred: Credential, server: Server, params: dict[str, Any]) -> None:
    t = submit(session, "ServerCdromTask", "server", server.id, server.name, params, cred=cred,
               tenant_id=server.tenant_id, domain_id=server.domain_id)
    server.active_task_id = t.id


def insert_iso(session: Session, cred: Credential, server: Server, body: dict[str, Any]) -> None:
    iso = iso_image(session, cred, body.get("image_id", body.get("image")))
    _guard(session, server, "insertiso", ("ready", "running"))
    if cdrom_of(server)["image_id"]:
        raise InvalidStatusError(f"server {server.name} has ISO {cdrom_of(server)['name']} in its drive: "
                                 "eject it first (server-eject-iso)")
    _submit(session, cred, server, {"op": "insert", "cdrom": iso})


def eject_iso(session: Session, cred: Credential, server: Server, body: dict[str, Any]) -> None:
    if not cdrom_of(server)["image_id"]:
        raise InvalidStatusError(f"server {server.name} has no ISO in its drive")
    _guard(session, server, "ejectiso", ("ready", "running"))
    _submit(session, cred, server, {"op": "eject", "cdrom": None})


def set_boot_index(session: Session, cred: Credential, server: Server, body: dict[str, Any]) -> None:
    """Cloudpods' set-boot-index: ``disks`` {disk index: boot index} and ``cdroms`` {ordinal: boot
    index}; the devices boot in boot-index order (those not named are not booted from)."""
    unknown = sorted(set(body) - {"disks", "cdroms"})
    if unknown:
        raise InputParameterError(f"set-boot-index: unknown parameter(s) {', '.join(unknown)} (disks, cdroms)")
    disks = {int(d) for d in session.scalars(select(Disk.disk_index).where(Disk.server_id == server.id))}
    ranks: dict[str, int] = {}
    for key, prefix in (("disks", "disk"), ("cdroms", "cdrom")):
        given = body.get(key) or {}
        if not isinstance(given, dict):
            raise InputParameterError(f"{key}: a map of {'disk index' if prefix == 'disk' else 'cdrom ordinal'} "
                                      "to boot index, e.g. {\"0\": 1}")
        for dev, rank in given.items():
            if not str(dev).isdigit():
                raise InputParameterError(f"{key}: {dev!r} is not a {'disk index' if prefix == 'disk' else 'ordinal'}")
            if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank <= 64:
                raise InputParameterError(f"{key}.{dev}: the boot index must be an integer 0..64")
            if prefix == "disk" and int(dev) not in disks:
                raise InputParameterError(f"{key}: server {server.name} has no disk with index {dev}")
            if prefix == "cdrom" and int(dev) != 0:
                raise InputParameterError(f"{key}: server {server.name} has one cdrom, ordinal 0")
            ranks[prefix if prefix == "cdrom" else f"disk{int(dev)}"] = rank
    if not ranks:
        raise InputParameterError("set-boot-index: give disks and/or cdroms with their boot index")
    if len(set(ranks.values())) != len(ranks):
        raise InputParameterError("set-boot-index: two devices with the same boot index")
    order = sorted(ranks, key=lambda k: ranks[k])
    _guard(session, server, "set-boot-index", ("ready",))
    t = submit(session, "ServerBootOrderTask", "server", server.id, server.name, {"boot_order": order}, cred=cred,
               tenant_id=server.tenant_id, domain_id=server.domain_id)
    server.active_task_id = t.id
