"""The work queue as an agent sees it: the long poll that hands items (and console sessions) out,
their acknowledgement, and a work item's report that moves its task on."""
from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from core.api.context import Credential
from core.api.deps import CredentialDep, SessionDep
from core.api.listing import parse_int
from core.config import Settings
from core.db.base import utcnow
from core.errors import ResourceNotFoundError
from core.host_protocol import WorkAck
from core.host_wake import HUB, PING_REFRESH_S, RULES, takeable
from core.hostapi.routes.access import AnyBody, agent_host, guard, json_body
from core.hostapi.routes.secgroups import rules_if_moved
from core.region.common import begin_write, iso, json_response, parse
from core.tasks.models import WorkItem
from core.tasks.payload_secrets import open_payload

router = APIRouter(prefix="/agent")
MAX_WAIT_S = 60
TICK_S = 1.0  # how often a waiting poll checks that its agent is still there
ACK_S = Settings.work_item_ack_s  # a handed-out item not acknowledged this long goes out again


def _takeable(host_id: str, now: Any) -> Any:
    """The host's items a poll may hand out (core.host_wake.takeable)."""
    return (WorkItem.host_id == host_id) & takeable(now)


def _take(db: Any, cred: Credential, host_id: str, limit: int, applied: int | None = None,
          with_secgroups: bool = False, ack_s: float = ACK_S, rules_ok: bool = True
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, Any]:
    """Hand out up to ``limit`` items of the host (marked ``dispatched``, to be acknowledged within
    ``ack_s``) and the console sessions its agent should connect (``connecting`` → ``dispatched``),
    with the host's secgroup_version; the poll is a ping. The host's rules (when asked for and moved)
    come along if ``rules_ok`` (not throttled) or with the items."""
    from core.console.models import ConsoleSession

    with db.session() as s:
        # Most polls find nothing: answer those from a read, without the write lock that every
        # replica's API writes and task stages queue behind (70 agents polling meant a steady
        # write stream). The ping is refreshed only when it is getting old.
        host = guard(s, cred, host_id)
        fresh = (host.host_status == "online" and host.last_ping_at is not None
                 and utcnow() - host.last_ping_at < timedelta(seconds=PING_REFRESH_S))
        if fresh and not _has_work(s, host.id):
            return [], [], int(host.secgroup_version or 0), rules_if_moved(s, host, applied,
                                                                              with_secgroups and rules_ok)
        s.rollback()
        begin_write(s)
        host = agent_host(s, host_id)  # the binding was checked above, in this call
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
        rules = rules_if_moved(s, host, applied, with_secgroups and bool(rules_ok or out or consoles))
        return out, consoles, int(host.secgroup_version or 0), rules


def _has_work(s: Any, host_id: str) -> bool:
    from core.console.models import ConsoleSession

    item = s.scalar(select(WorkItem.id).where(_takeable(host_id, utcnow())).limit(1))
    return item is not None or s.scalar(select(ConsoleSession.id).where(
        ConsoleSession.host_id == host_id, ConsoleSession.status == "connecting").limit(1)) is not None


@router.get("/hosts/{host_id}/work-items")
async def work_items(host_id: str, request: Request, cred: CredentialDep) -> Response:
    wait = parse_int(request.query_params.get("wait"), "wait", 0, 0, MAX_WAIT_S)
    limit = parse_int(request.query_params.get("limit"), "limit", 10, 1, 100)
    known = request.query_params.get("secgroup_version")
    applied = parse_int(known, "secgroup_version", 0, 0, 2**62) if known is not None else None
    want_rules = request.query_params.get("with_secgroups") in ("1", "true")
    db = request.app.state.db
    ack_s = float(getattr(request.app.state.settings, "work_item_ack_s", ACK_S))
    deadline = time.monotonic() + wait
    # registered before the first look: a commit that queues an item for this host after the look
    # wakes this poll (and only this host's polls: core/host_wake.py)
    w = HUB.add(host_id, db)
    try:
        while True:
            # an agent that went away (stopped, restarted) mid-poll must not be handed items it will
            # never see: they would sit "dispatched" until the redelivery job, not go to its successor
            if await request.is_disconnected():
                return json_response({"work_items": []})
            w.clear()
            throttled = applied is not None and time.monotonic() < RULES.due(host_id)
            items, consoles, version, rules = await run_in_threadpool(_take, db, cred, host_id, limit, applied,
                                                                      want_rules, ack_s, not throttled)
            w.version = version if applied is not None else None
            draining = getattr(request.app.state, "draining", False)  # the controller is shutting down
            changed = applied is not None and version != applied
            now = time.monotonic()
            if items or consoles or draining or now >= deadline or (changed and not throttled):
                if changed and rules is None and throttled and applied is not None:
                    version = applied  # its rules were held back (throttled): they come with a later answer
                out: dict[str, Any] = {"work_items": items, "consoles": consoles, "secgroup_version": version}
                if rules is not None:
                    # the new rules ride on this answer: the agent applies them without a second round trip
                    out["secgroups"] = rules
                    RULES.sent(host_id, HUB.hosts_waiting())
                elif changed and not want_rules:
                    RULES.sent(host_id, HUB.hosts_waiting())  # the agent fetches them itself
                return json_response(out)
            until = min(RULES.due(host_id), deadline) if changed else deadline
            while not w.event.is_set() and now < until and not getattr(request.app.state, "draining", False):
                try:  # woken by a commit or the sweep (core/host_wake.py); a tick to notice a disconnect
                    await asyncio.wait_for(w.event.wait(), min(TICK_S, until - now))
                except TimeoutError:
                    if await request.is_disconnected():
                        break
                now = time.monotonic()
    finally:
        HUB.drop(w)


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

@router.post("/tasks/{task_id}")
def report_task(task_id: str, session: SessionDep, cred: CredentialDep, body: Any = AnyBody) -> Response:
    from core.region.managers.tasks import task_dict
    from core.tasks.engine import report

    data = json_body(body)
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
