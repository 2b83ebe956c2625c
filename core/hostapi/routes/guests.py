"""What the hypervisor says of its guests (status, reasons) and what the region expects on the host."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select

from core.api.deps import CredentialDep, SessionDep
from core.errors import InputParameterError
from core.host_protocol import POWER_STATUS, GuestState, server_status
from core.hostapi.routes.access import AnyBody, guard, json_body
from core.region.common import begin_write, json_response
from core.region.models import Server

router = APIRouter(prefix="/agent")
GUEST_STATUSES = tuple(s.value for s in GuestState)


@router.post("/hosts/{host_id}/guests")
def guests(host_id: str, session: SessionDep, cred: CredentialDep, body: Any = AnyBody) -> Response:
    """Lifecycle events and the periodic sync: the hypervisor's view settles idle servers' status."""
    from core.region import statemachine as sm

    data = json_body(body)
    seen = data.get("guests")
    if not isinstance(seen, list) or not all(isinstance(g, dict) for g in seen):
        raise InputParameterError("guests: expected a list of {id, status}")
    reported: dict[str, str] = {}
    reasons: dict[str, str] = {}  # why a guest is absent/unknown (e.g. lost by the hypervisor, see Agent.reconcile)
    for g in seen:
        st = g.get("status")
        if st not in GUEST_STATUSES:
            raise InputParameterError(f"guests: status {st!r} is not one of {', '.join(GUEST_STATUSES)}")
        reported[str(g.get("id"))] = str(st)
        if g.get("reason"):
            reasons[str(g.get("id"))] = str(g["reason"])[:2000]
    begin_write(session)
    host = guard(session, cred, host_id)
    stmt = select(Server).where(Server.host_id == host.id)
    if not data.get("full"):
        stmt = stmt.where(Server.id.in_(list(reported)))
    changed = []
    for server in session.scalars(stmt):
        to = server_status(reported.get(server.id, GuestState.ABSENT.value))
        if to is None or server.active_task_id:
            continue  # in passing, or a task is about to say what happened
        moved = to != server.status and sm.apply_if(server, f"observed:{to}")
        if moved:
            server.power_status = POWER_STATUS.get(to, server.power_status)
        why = reasons.get(server.id)
        if why and server.status == to and why != server.status_reason:
            sm.set_reason(server, why)
            moved = True
        if moved:
            changed.append({"id": server.id, "name": server.name, "status": server.status,
                            "status_reason": server.status_reason})
    session.commit()
    return json_response({"changed": changed})


@router.get("/hosts/{host_id}/guests-expected")
def guests_expected(host_id: str, session: SessionDep, cred: CredentialDep) -> Response:
    """What the region holds on this host (every tenant's servers, this host only): the agent
    that starts reconciles its hypervisor with it (re-defined guests started again, lost ones named)."""
    host = guard(session, cred, host_id)
    rows = session.execute(select(Server.id, Server.name, Server.status, Server.power_status, Server.active_task_id)
                           .where(Server.host_id == host.id).order_by(Server.created_at, Server.id))
    return json_response({"guests": [{"id": i, "name": n, "status": st, "power_status": p, "active_task_id": t}
                                     for i, n, st, p, t in rows]})
