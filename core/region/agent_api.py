"""Routes for host agents: long-poll for work items (ARCHITECTURE decision 4).

    GET /hosts/<id>/work-items?wait=30&limit=10
        → {"work_items": [{"id", "task_id", "kind", "payload", ...}]}  (empty after ``wait`` s)
    POST /tasks/<task_id>   {"work_item_id": ..., ...result}  or  {"__status__": "error", "__reason__": ...}

Fetching marks the items ``dispatched``; an item not reported within the dispatch timeout goes
back to ``queued`` (periodic job), so an agent that crashed mid-item gets it again.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from core.api.context import Credential
from core.api.deps import CredentialDep
from core.api.listing import _int
from core.db.base import utcnow
from core.keystone.policy import enforce
from core.region.common import begin_write, iso, json_response
from core.tasks.engine import WORK_AVAILABLE
from core.tasks.models import WorkItem

router = APIRouter()
MAX_WAIT_S = 60
POLL_S = 0.5


def take_work(db: Any, cred: Credential, host_ref: str, limit: int) -> list[dict[str, Any]]:
    from core.region.registry import get_manager

    with db.session() as s:
        begin_write(s)
        host = get_manager("hosts").fetch(s, cred, host_ref)
        if host.target == "executor":  # the controller's executor runs its items (core/hostapi/executor.py)
            from core.errors import ForbiddenError

            raise ForbiddenError(f"host {host.name} is run by the controller's executor, not by an agent")
        # SKIP LOCKED: a second poll for the host on another replica (the agent gave up on a slow one
        # and asked again) must not be handed the same items (PostgreSQL/MariaDB; SQLite has one writer)
        items = list(s.scalars(select(WorkItem).where(WorkItem.host_id == host.id, WorkItem.status == "queued")
                               .order_by(WorkItem.created_at).limit(limit).with_for_update(skip_locked=True)))
        now = utcnow()
        out = []
        for wi in items:
            wi.status, wi.dispatched_at = "dispatched", now
            out.append({"id": wi.id, "task_id": wi.task_id, "stage": wi.stage, "kind": wi.kind, "host_id": wi.host_id,
                        "payload": wi.payload, "created_at": iso(wi.created_at)})
        # an agent asking for work is alive: count it as a ping
        if host.host_status != "online":
            host.host_status = "online"
            host.generation += 1
        host.last_ping_at = now
        return out


@router.get("/hosts/{ident}/work-items")
async def poll_work(ident: str, request: Request, cred: CredentialDep) -> Response:
    enforce(cred, "compute:hosts:agent")
    wait = _int(request.query_params.get("wait"), "wait", 0, 0, MAX_WAIT_S)
    limit = _int(request.query_params.get("limit"), "limit", 10, 1, 100)
    db = request.app.state.db
    deadline = time.monotonic() + wait
    while True:
        items = await run_in_threadpool(take_work, db, cred, ident, limit)
        if items or time.monotonic() >= deadline or await request.is_disconnected():
            return json_response({"work_items": items})
        # woken at once by a work item queued in this process; other replicas' items within POLL_S
        await _wait_event(min(POLL_S, deadline - time.monotonic()))
        WORK_AVAILABLE.clear()


async def _wait_event(timeout: float) -> None:
    end = time.monotonic() + max(timeout, 0)
    while time.monotonic() < end and not WORK_AVAILABLE.is_set():
        await asyncio.sleep(0.05)
