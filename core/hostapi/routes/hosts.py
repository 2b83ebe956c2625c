"""A host joins with a token, registers what it has, and pings: the region's view of it as a host."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select

from core.api.deps import CredentialDep, SessionDep
from core.db.base import utcnow
from core.errors import InputParameterError
from core.hostapi.routes.access import AnyBody, guard, json_body
from core.region.common import begin_write, json_response
from core.region.enroll import redeem_join_token
from core.region.models import Server
from core.tasks.models import WorkItem

router = APIRouter(prefix="/agent")


@router.post("/join")
def join(session: SessionDep, body: Any = AnyBody) -> Response:
    data = json_body(body)
    token, name = data.get("token"), data.get("host_name")
    if not isinstance(name, str) or not name:
        raise InputParameterError("host_name: required")
    begin_write(session)
    creds = redeem_join_token(session, str(token or ""), host_name=name, access_mac=str(data.get("access_mac") or ""))
    from core.audit import record

    record(session, None, service="compute", action="join", obj_type="host", obj_id=creds.host_id,
           obj_name=creds.host_name, success=True, notes=f"agent user {creds.user_name}")
    session.commit()
    return json_response({"host_id": creds.host_id, "host_name": creds.host_name, "zone_id": creds.zone_id,
                          "username": creds.user_name, "password": creds.password,
                          "project_name": creds.project_name, "domain_name": creds.domain_name})


@router.post("/hosts/{host_id}/register")
def register(host_id: str, session: SessionDep, cred: CredentialDep, body: Any = AnyBody) -> Response:
    from core.region.managers.hosts import capacity
    from core.region.registry import get_manager

    data = json_body(body)
    begin_write(session)
    host = guard(session, cred, host_id)
    # the agent describes its host; it cannot rename it, move it or claim another host's MAC
    data = {**data, "name": host.name, "access_mac": host.access_mac, "enabled": None}
    (row,) = get_manager("hosts").create(session, cred, data, 1, ("zones", host.zone_id))
    # a restarted agent lost what it had fetched: hand those work items out again
    for wi in session.scalars(select(WorkItem).where(WorkItem.host_id == host.id, WorkItem.status == "dispatched")):
        wi.status, wi.dispatched_at, wi.lease_expires_at = "queued", None, None  # (wakes its polls: host_wake)
    session.flush()
    out = {"id": row.id, "name": row.name, "zone_id": row.zone_id, "host_status": row.host_status,
           "enabled": row.enabled, **capacity(row)}
    session.commit()
    return json_response({"host": out})


@router.post("/hosts/{host_id}/ping")
def ping(host_id: str, session: SessionDep, cred: CredentialDep, body: Any = AnyBody) -> Response:
    data = json_body(body)
    begin_write(session)
    host = guard(session, cred, host_id)
    was = host.host_status
    host.last_ping_at, host.host_status = utcnow(), "online"
    if was != "online":
        host.generation += 1
    usage = data.get("usage")
    if isinstance(usage, dict):
        host.sys_info = {**(host.sys_info or {}), "usage": usage}
    if data.get("samples"):  # usage history (core/metrics/history.py): only this host's own servers
        from core.metrics.history import ingest

        mine = set(session.scalars(select(Server.id).where(Server.host_id == host.id)))
        ingest(session, host.id, data["samples"], mine)
    session.commit()
    # a host that never registered under the host contract (its agent started before the upgrade
    # that added driver/capabilities, region_0003) is asked to register again, so its
    # capabilities reach the scheduler and the API without restarting the agent
    return json_response({"host_status": "online", "enabled": host.enabled, "was": was,
                          "register": not host.driver_version})
