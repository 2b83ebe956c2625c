"""Routes for host agents under ``/api/s/compute_v2/agent`` (mounted by core/region/api.py).

    POST /agent/join                          {token, host_name, access_mac}  (no auth: the token is it)
    POST /agent/hosts/<id>/register           host facts, storages, wires → the host
    POST /agent/hosts/<id>/ping               {usage} → {host_status, enabled}
    POST /agent/hosts/<id>/guests             {guests: [{id, status, reason?}], full} → servers whose status moved
    GET  /agent/hosts/<id>/guests-expected    the servers the region places on the host, last recorded status
    GET  /agent/hosts/<id>/work-items?wait=N&secgroup_version=V  long-poll: queued items, marked
                                              dispatched (≤ N s, ≤ limit), console sessions to open
                                              ({"consoles": [...]}) and the host's secgroup_version
                                              (returns early when it is not V: rules changed)
    POST /agent/hosts/<id>/work-items/ack     {ids} the items the poll's reply brought (core.hostapi.protocol.WorkAck);
                                              unacknowledged ones are handed out again after work_item_ack_s
    GET  /agent/hosts/<id>/secgroups          every guest port of the host with its effective rules
    WS   /agent/hosts/<id>/consoles/<sid>     the agent's outbound side of a console session (core/console)
    POST /agent/tasks/<task_id>               a work item's report {work_item_id, ...result} or an ErrorResult
    GET  /agent/hosts/<id>/images/<image_id>  an image one of the host's guests boots from (streamed)
    PUT  /agent/hosts/<id>/migrations/<server_id>/disks/<disk_id>  a migrating guest's disk, from its source
    GET  /agent/hosts/<id>/migrations/<server_id>/disks/<disk_id>  the same, to its target (core/hostapi/migrations.py)

An agent's service user (core.hostapi.enroll) may call these for its own host only (403 else);
a cloud admin may call them for any host (the tests' agent, tools). These are the ONLY routes
an agent uses: the real agent, hollow agents and the tests' agent all speak exactly this.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Body, Request, WebSocket
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import event, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from core.api.context import Credential
from core.api.deps import CredentialDep, SessionDep
from core.api.listing import _int
from core.config import Settings
from core.db.base import utcnow
from core.errors import CloudpodsError, ForbiddenError, InputParameterError, ResourceNotFoundError, UnauthorizedError
from core.hostapi.enroll import binding_host, redeem_join_token
from core.hostapi.protocol import POWER_STATUS, GuestState, WorkAck, server_status
from core.keystone.policy import enforce
from core.region.common import begin_write, iso, json_response, parse
from core.region.models import Disk, Host, Server
from core.tasks.models import WorkItem
from core.tasks.payload_secrets import open_payload

router = APIRouter(prefix="/agent")
# an agent's upload of a saved image: streamed into glance's intake (exempt from the gateway's body cap)
IMAGE_UPLOAD_PATH = re.compile(r"^/api/s/compute_v2/agent/hosts/[^/]+/images/[^/]+$")
AnyBody = Body(default=None)
MAX_WAIT_S = 60
POLL_S = 0.5  # how often a long poll looks for items queued by other replicas
PING_REFRESH_S = 10  # a poll re-writes last_ping_at when older than this (offline after 180 s)
ACK_S = Settings.work_item_ack_s  # a handed-out item not acknowledged this long goes out again
GUEST_STATUSES = tuple(s.value for s in GuestState)


def guard(session: Any, cred: Credential, host_id: str) -> Host:
    """The host ``cred`` may act as the agent of: its bound host, or any host for an admin."""
    bound = binding_host(session, cred.user_id)
    if bound is None:
        enforce(cred, "compute:hosts:agent")
    elif bound != host_id:
        raise ForbiddenError(f"this agent acts for host {bound} only, not {host_id}")
    host = session.get(Host, host_id)
    if host is None:
        raise ResourceNotFoundError(f"host {host_id} not found")
    if host.target == "executor":  # its items are the controller's (core/hostapi/executor.py), not an agent's
        raise ForbiddenError(f"host {host.name} is run by the controller's executor, not by an agent")
    return host


def _body(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InputParameterError("body: expected a JSON object")
    return body


@router.post("/join")
def join(session: SessionDep, body: Any = AnyBody) -> Response:
    data = _body(body)
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

    data = _body(body)
    begin_write(session)
    host = guard(session, cred, host_id)
    # the agent describes its host; it cannot rename it, move it or claim another host's MAC
    data = {**data, "name": host.name, "access_mac": host.access_mac, "enabled": None}
    (row,) = get_manager("hosts").create(session, cred, data, 1, ("zones", host.zone_id))
    # a restarted agent lost what it had fetched: hand those work items out again
    for wi in session.scalars(select(WorkItem).where(WorkItem.host_id == host.id, WorkItem.status == "dispatched")):
        wi.status, wi.dispatched_at, wi.lease_expires_at = "queued", None, None
        session.info["work_queued"] = True
    session.flush()
    out = {"id": row.id, "name": row.name, "zone_id": row.zone_id, "host_status": row.host_status,
           "enabled": row.enabled, **capacity(row)}
    session.commit()
    return json_response({"host": out})


@router.post("/hosts/{host_id}/ping")
def ping(host_id: str, session: SessionDep, cred: CredentialDep, body: Any = AnyBody) -> Response:
    data = _body(body)
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


@router.post("/hosts/{host_id}/guests")
def guests(host_id: str, session: SessionDep, cred: CredentialDep, body: Any = AnyBody) -> Response:
    """Lifecycle events and the periodic sync: the hypervisor's view settles idle servers' status."""
    from core.region import statemachine as sm

    data = _body(body)
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


def _takeable(host_id: str, now: Any) -> Any:
    """The host's items a poll may hand out: queued ones, and those handed out earlier whose
    acknowledgement is overdue (the reply never reached the agent: its replica died after the commit)."""
    overdue = (WorkItem.status == "dispatched") & (WorkItem.owner == "") & (WorkItem.lease_expires_at < now)
    return (WorkItem.host_id == host_id) & ((WorkItem.status == "queued") | overdue)


def _take(db: Any, cred: Credential, host_id: str, limit: int, applied: int | None = None,
          with_secgroups: bool = False, ack_s: float = ACK_S
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, Any]:
    """Hand out up to ``limit`` items of the host (marked ``dispatched``, to be acknowledged within
    ``ack_s``) and the console sessions its agent should connect (``connecting`` → ``dispatched``),
    with the host's secgroup_version; the poll is a ping."""
    from core.console.models import ConsoleSession

    with db.session() as s:
        # Most polls find nothing: answer those from a read, without the write lock that every
        # replica's API writes and task stages queue behind (70 agents polling meant a steady
        # write stream). The ping is refreshed only when it is getting old.
        host = guard(s, cred, host_id)
        fresh = (host.host_status == "online" and host.last_ping_at is not None
                 and utcnow() - host.last_ping_at < timedelta(seconds=PING_REFRESH_S))
        if fresh and not _has_work(s, host.id):
            return [], [], int(host.secgroup_version or 0), _rules_if_moved(s, host, applied, with_secgroups)
        s.rollback()
        begin_write(s)
        host = guard(s, cred, host_id)
        # SKIP LOCKED: a second poll for the host on another replica (the agent gave up on a slow one
        # and asked again) must not be handed the same items (PostgreSQL/MariaDB; SQLite has one writer)
        now = utcnow()
        items = list(s.scalars(select(WorkItem).where(_takeable(host.id, now))
                               .order_by(WorkItem.created_at).limit(limit).with_for_update(skip_locked=True)))
        out = []
        for wi in items:
            # lease_expires_at of an agent's item: until when its hand-out awaits the agent's ack
            wi.status, wi.dispatched_at, wi.lease_expires_at = "dispatched", now, now + timedelta(seconds=ack_s)
            out.append({"id": wi.id, "task_id": wi.task_id, "stage": wi.stage, "kind": wi.kind, "host_id": wi.host_id,
                        "payload": open_payload(wi.payload), "created_at": iso(wi.created_at)})
        consoles = []
        for cs in s.scalars(select(ConsoleSession).where(ConsoleSession.host_id == host.id,
                                                         ConsoleSession.status == "connecting")
                            .with_for_update(skip_locked=True)):
            cs.status = "dispatched"
            consoles.append({"id": cs.id, "server_id": cs.server_id, "protocol": cs.protocol,
                             "relay_url": cs.relay_url})
        if host.host_status != "online":  # an agent asking for work is alive
            host.host_status = "online"
            host.generation += 1
        host.last_ping_at = now
        # the host's rules (when asked for and moved) are read in this same transaction: the handed-out
        # items commit only once the whole answer is ready, so a replica killed between the commit and
        # the reply strands as few items as before (reading them after the commit widened that window
        # and the chaos test saw a server stuck in deploying)
        return out, consoles, int(host.secgroup_version or 0), _rules_if_moved(s, host, applied, with_secgroups)


def _rules_if_moved(s: Any, host: Any, applied: int | None, wanted: bool) -> Any:
    """The host's security groups in the agent's shape, when it asked for them and its version moved."""
    if not wanted or applied is None or int(host.secgroup_version or 0) == applied:
        return None
    from core.hostapi.protocol import dump
    from core.region.secgroups import host_secgroups

    return dump(host_secgroups(s, host))


def _has_work(s: Any, host_id: str) -> bool:
    from core.console.models import ConsoleSession

    item = s.scalar(select(WorkItem.id).where(_takeable(host_id, utcnow())).limit(1))
    return item is not None or s.scalar(select(ConsoleSession.id).where(
        ConsoleSession.host_id == host_id, ConsoleSession.status == "connecting").limit(1)) is not None


# A generation bumped by every commit that queued a work item in this process. Each long poll
# remembers the one it saw, so no waiter can consume another's wake-up (a shared Event that
# every waiter clears loses them when several agents wait at once); other replicas' items are
# found by the periodic re-check every POLL_S.
_work_gen = [0]


@event.listens_for(Session, "after_commit", insert=True)  # before core.tasks.engine pops the flag
def _work_committed(session: Session) -> None:
    if session.info.get("work_queued"):
        _work_gen[0] += 1


@router.get("/hosts/{host_id}/work-items")
async def work_items(host_id: str, request: Request, cred: CredentialDep) -> Response:
    wait = _int(request.query_params.get("wait"), "wait", 0, 0, MAX_WAIT_S)
    limit = _int(request.query_params.get("limit"), "limit", 10, 1, 100)
    known = request.query_params.get("secgroup_version")
    applied = _int(known, "secgroup_version", 0, 0, 2**62) if known is not None else None
    want_rules = request.query_params.get("with_secgroups") in ("1", "true")
    db = request.app.state.db
    ack_s = float(getattr(request.app.state.settings, "work_item_ack_s", ACK_S))
    deadline = time.monotonic() + wait
    while True:
        seen = _work_gen[0]
        # an agent that went away (stopped, restarted) mid-poll must not be handed items it will
        # never see: they would sit "dispatched" until the redelivery job, not go to its successor
        if await request.is_disconnected():
            return json_response({"work_items": []})
        items, consoles, version, rules = await run_in_threadpool(_take, db, cred, host_id, limit, applied,
                                                                  want_rules, ack_s)
        draining = getattr(request.app.state, "draining", False)  # the controller is shutting down
        changed = applied is not None and version != applied
        if items or consoles or draining or time.monotonic() >= deadline or changed:
            out: dict[str, Any] = {"work_items": items, "consoles": consoles, "secgroup_version": version}
            if rules is not None:
                # the new rules ride on this answer: the agent applies them without a second round trip
                out["secgroups"] = rules
            return json_response(out)
        until = min(time.monotonic() + POLL_S, deadline)
        while _work_gen[0] == seen and time.monotonic() < until and not getattr(request.app.state, "draining", False):
            await asyncio.sleep(0.01)


@router.post("/hosts/{host_id}/work-items/ack")
def ack_work_items(host_id: str, session: SessionDep, cred: CredentialDep, body: Any = AnyBody) -> Response:
    """The agent received these items: they are not handed out again (until work_item_timeout_s).

    A late ack of an item already re-queued takes it back (the agent holds it); ids of other hosts,
    of finished items or unknown ones are ignored (the answer lists the ids that were acknowledged)."""
    ids = parse(WorkAck, body).ids
    begin_write(session)
    host = guard(session, cred, host_id)
    now, acked = utcnow(), []
    if ids:
        for wi in session.scalars(select(WorkItem).where(WorkItem.host_id == host.id, WorkItem.id.in_(ids),
                                                         WorkItem.owner == "",
                                                         WorkItem.status.in_(("queued", "dispatched")))):
            if wi.status == "queued":
                wi.status, wi.dispatched_at = "dispatched", now
            wi.lease_expires_at = None
            acked.append(wi.id)
    session.commit()
    return json_response({"acked": sorted(acked)})


@router.websocket("/hosts/{host_id}/consoles/{session_id}")
async def console_link(ws: WebSocket, host_id: str, session_id: str) -> None:
    """The agent dials out to carry one console session (it was told by its long poll)."""
    from core.console import relay
    from core.console.models import ConsoleSession
    from core.console.routes import _deny, _ws_user

    def allowed(cred: Credential) -> None:
        with ws.app.state.db.session() as s:
            guard(s, cred, host_id)
            cs = s.get(ConsoleSession, session_id)
            if cs is None or cs.host_id != host_id or cs.status != "dispatched":
                raise ResourceNotFoundError(f"no console session {session_id} waits for host {host_id}")

    try:
        cred = await _ws_user(ws)
        if cred is None:
            raise UnauthorizedError("missing X-Auth-Token")
        await run_in_threadpool(allowed, cred)
    except CloudpodsError as err:
        await _deny(ws, err)
        return
    await relay.agent_arrived(session_id, ws)


@router.get("/hosts/{host_id}/secgroups")
def secgroups(host_id: str, session: SessionDep, cred: CredentialDep) -> Response:
    """What the host's agent enforces (core.hostapi.protocol.HostSecgroups): all its guests' ports."""
    from core.hostapi.protocol import dump
    from core.region.secgroups import host_secgroups

    host = guard(session, cred, host_id)
    return json_response({"secgroups": dump(host_secgroups(session, host))})


@router.post("/tasks/{task_id}")
def report_task(task_id: str, session: SessionDep, cred: CredentialDep, body: Any = AnyBody) -> Response:
    from core.region.managers.tasks import task_dict
    from core.tasks.engine import report

    data = _body(body)
    begin_write(session)
    stmt = select(WorkItem).where(WorkItem.task_id == task_id, WorkItem.status.in_(("queued", "dispatched")))
    if data.get("work_item_id"):
        stmt = stmt.where(WorkItem.id == str(data["work_item_id"]))
    wi = session.scalar(stmt.limit(1))
    if wi is None:
        raise ResourceNotFoundError(f"task {task_id} has no open work item")
    guard(session, cred, wi.host_id)
    t = report(session, task_id, data)
    out = task_dict(t)
    session.commit()
    return json_response({"task": out})


def _host_images(session: Any, host: Host) -> set[str]:
    """Images the host's guests boot from (or will: migrating in), with the kernels/ramdisks those images name."""
    from core.glance.service import with_boot_files

    ids = set(session.scalars(select(Disk.template_id).join(Server, Server.id == Disk.server_id)
                              .where(Server.host_id == host.id, Disk.template_id != "")))
    # ... and those of guests migrating in, cold or live (on their source host until the move is done)
    from core.hostapi.protocol import WorkKind

    incoming = (WorkKind.MIGRATE_IN.value, WorkKind.LIVE_MIGRATE_PREPARE.value)
    for p in session.scalars(select(WorkItem.payload).where(WorkItem.host_id == host.id,
                                                            WorkItem.kind.in_(incoming),
                                                            WorkItem.status.in_(("queued", "dispatched")))):
        ids |= {str(d["image_id"]) for d in (p or {}).get("disks") or [] if isinstance(d, dict) and d.get("image_id")}
        if (p or {}).get("cdrom_image_id"):
            ids.add(str(p["cdrom_image_id"]))
    # ISOs in its guests' CD-ROM drives (core.region.cdrom), and those going in (server-insert-iso)
    for spec in session.scalars(select(Server.create_spec).where(Server.host_id == host.id)):
        iso = (spec or {}).get("cdrom") or {}
        if iso.get("image_id"):
            ids.add(str(iso["image_id"]))
    for p in session.scalars(select(WorkItem.payload).where(WorkItem.host_id == host.id,
                                                            WorkItem.kind == WorkKind.CDROM.value,
                                                            WorkItem.status.in_(("queued", "dispatched")))):
        if (p or {}).get("image_id"):
            ids.add(str(p["image_id"]))
    return with_boot_files(session, ids)


@router.get("/hosts/{host_id}/images/{image_id}")
def image(host_id: str, image_id: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    from core.glance.service import open_image

    host = guard(session, cred, host_id)
    reader_cred = cred
    if binding_host(session, cred.user_id) is not None:
        if image_id not in _host_images(session, host):
            raise ForbiddenError(f"no guest of host {host.name} uses image {image_id}")
        # the agent reads a tenant's image on the region's authority, for that tenant's guest only
        reader_cred = Credential(token="", user_id=cred.user_id, user_name=cred.user_name,
                                 user_domain_id=cred.user_domain_id, user_domain_name=cred.user_domain_name,
                                 scope="system", roles=("admin", "member", "reader"))
    cm = open_image(session, image_id, reader_cred, data_dir=request.app.state.settings.data_dir)
    reader = cm.__enter__()
    info = reader.info
    session.commit()  # nothing to write; do not hold a transaction while streaming

    def chunks() -> Iterator[bytes]:
        try:
            while block := reader.read(1 << 20):
                yield block
        finally:
            cm.__exit__(None, None, None)

    headers = {"content-length": str(reader.size), "x-image-id": info.id, "x-image-name": info.name,
               "x-image-format": reader.format, "x-image-sha256": info.sha256 or "",
               "x-image-properties": json.dumps(info.properties, separators=(",", ":"))}
    if reader.format != (info.disk_format or "raw"):
        headers["x-image-sha256"] = ""  # a converted sub-format has other bytes than the upload
    return StreamingResponse(chunks(), media_type="application/octet-stream", headers=headers)


@router.put("/hosts/{host_id}/migrations/{server_id}/disks/{disk_id}")
async def upload_migrating_disk(host_id: str, server_id: str, disk_id: str, request: Request,
                                cred: CredentialDep) -> Response:
    """The source host hands over one disk of a guest it migrates out (streamed to the staging dir)."""
    from core.hostapi import migrations

    db = request.app.state.db

    def allowed() -> None:
        with db.session() as s:
            guard(s, cred, host_id)
            migrations.may_upload(s, host_id, server_id, disk_id)

    await run_in_threadpool(allowed)
    out = await migrations.receive(request.app.state.settings.data_dir, server_id, disk_id, request.stream(),
                                   request.headers.get("x-disk-sha256", ""))
    return json_response({"disk": out})


@router.get("/hosts/{host_id}/migrations/{server_id}/disks/{disk_id}")
def download_migrating_disk(host_id: str, server_id: str, disk_id: str, request: Request, session: SessionDep,
                            cred: CredentialDep) -> Response:
    """The target host takes one staged disk of a guest it migrates in (streamed, x-disk-sha256)."""
    from core.hostapi import migrations

    guard(session, cred, host_id)
    migrations.may_download(session, host_id, server_id, disk_id)
    path, sha = migrations.staged(request.app.state.settings.data_dir, server_id, disk_id)
    session.commit()  # nothing to write; do not hold a transaction while streaming
    return StreamingResponse(migrations.chunks_of(path), media_type="application/octet-stream",
                             headers={"x-disk-sha256": sha, "content-length": str(path.stat().st_size)})


@router.put("/hosts/{host_id}/images/{image_id}")
async def upload_saved_image(host_id: str, image_id: str, request: Request, cred: CredentialDep) -> Response:
    """A host saves a guest's disk as an image: only into the image a dispatched save-image item of
    this host names, streamed through glance's own intake (size cap, quota, qemu-img inspection)."""
    from core.glance.context import glance_ctx
    from core.glance.intake import UploadRequest, content_length_of, receive
    from core.hostapi.protocol import WorkKind

    db = request.app.state.db

    def allowed() -> None:
        with db.session() as s:
            guard(s, cred, host_id)
            for wi in s.scalars(select(WorkItem).where(WorkItem.host_id == host_id, WorkItem.status == "dispatched",
                                                       WorkItem.kind == WorkKind.SAVE_IMAGE.value)):
                if (wi.payload or {}).get("image_id") == image_id:
                    return
            raise ForbiddenError(f"host {host_id} is not saving image {image_id}")

    await run_in_threadpool(allowed)
    req = UploadRequest(image_id=image_id, declared_format="qcow2", content_length=content_length_of(request))
    img, _done = await receive(glance_ctx(request.app), request, req, cred)
    return json_response({"image": {"id": img.id, "status": img.status, "size": img.size,
                                    "disk_format": img.disk_format}})
