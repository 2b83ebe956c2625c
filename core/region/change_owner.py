"""``server-change-owner``: a server moves to another project with what is its own (its disks, their
snapshots, its instance snapshots) and the quota they hold (given back to the old project, reserved
in the new one: refused as a whole when the new project lacks room). Its addresses stay as they are;
its security groups become the new project's Default (the old project's groups are not the new
owner's to see or change), as a create there without ``--secgroups`` would have them.

Cloud admins only: moving a resource between projects is not a project member's act.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.errors import InputParameterError, InvalidStatusError, NotSufficientPrivilegeError
from core.region import quotas
from core.region import statemachine as sm
from core.region.managers._util import unique_name
from core.region.models import Disk, InstanceSnapshot, Server, Snapshot


def _project(session: Session, ref: Any) -> tuple[str, str]:
    from core.keystone.models import Project

    if not isinstance(ref, str) or not ref:
        raise InputParameterError("tenant: required (the project, id or name, the server moves to)")
    row = session.get(Project, ref)
    if row is None:
        rows = list(session.scalars(select(Project).where(Project.name == ref).limit(2)))
        if len(rows) > 1:
            raise InputParameterError(f"project name {ref!r} is ambiguous: use the id")
        row = rows[0] if rows else None
    if row is None:
        raise InputParameterError(f"project {ref!r} not found")
    return str(row.id), str(row.domain_id or "default")


def _held_quota(session: Session, server: Server, disks: list[Disk]) -> dict[str, int]:
    """What the server and its disks hold against their project's quota."""
    out: dict[str, int] = {}
    for held in [server.held or {}] + [d.held or {} for d in disks]:
        for k, v in (held.get("quota") or {}).items():
            out[k] = out.get(k, 0) + int(v or 0)
    n = session.scalar(select(func.count()).select_from(Snapshot).where(
        Snapshot.disk_id.in_([d.id for d in disks]), Snapshot.status != "create_failed")) if disks else 0
    if n:
        out["snapshot"] = out.get("snapshot", 0) + int(n)
    return {k: v for k, v in out.items() if v and k in quotas.KEYS}


def change_owner(session: Session, cred: Credential, server: Server, body: dict[str, Any]) -> None:
    from core.keystone.policy import is_system_admin
    from core.region.secgroups import default_secgroup, set_server_secgroups

    if not is_system_admin(cred):
        raise NotSufficientPrivilegeError("change-owner: only a cloud admin moves a server between projects")
    tenant, domain = _project(session, body.get("tenant") or body.get("project") or body.get("tenant_id")
                              or body.get("project_id"))
    if tenant == server.tenant_id:
        raise InputParameterError(f"server {server.name} is in that project already")
    if server.pending_deleted:
        raise InvalidStatusError(f"server {server.name} is in the recycle bin: cancel-delete it first")
    sm.guard_busy(server)
    disks = list(session.scalars(select(Disk).where(Disk.server_id == server.id)))
    for d in disks:
        sm.guard_busy(d, "disk")
    unique_name(session, Server, server.name, scope={"tenant_id": tenant})
    snaps = list(session.scalars(select(Snapshot).where(Snapshot.disk_id.in_([d.id for d in disks])))) if disks else []
    isnaps = list(session.scalars(select(InstanceSnapshot).where(InstanceSnapshot.guest_id == server.id)))
    for model, rows in ((Snapshot, snaps), (InstanceSnapshot, isnaps)):
        for r in rows:  # names are unique in a project: the new one must not have them already
            unique_name(session, model, r.name, scope={"tenant_id": tenant})
    held = _held_quota(session, server, disks)
    quotas.reserve(session, tenant, domain, **held)  # the new project must have room: else nothing moves
    quotas.release(session, server.tenant_id, held)
    server.tenant_id, server.domain_id = tenant, domain
    for d in disks:
        d.tenant_id, d.domain_id = tenant, domain
    for s in snaps:
        s.tenant_id, s.domain_id = tenant, domain
    for i in isnaps:
        i.tenant_id, i.domain_id = tenant, domain
    set_server_secgroups(session, server, [default_secgroup(session, tenant, domain).id])
