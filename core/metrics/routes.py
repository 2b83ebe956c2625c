"""``GET /metrics``: the controller's Prometheus exposition.

Auth: by default the caller needs a token with the ``monitor:metrics:get`` rule (system admin):
the families name every project and its usage, which a tenant must not see. A Prometheus that
cannot hold an expiring keystone token scrapes a replica with ``metrics_open = true`` (setting, or
``CLOUDPODS_METRICS_OPEN=1``): then /metrics answers without a token, and the operator keeps the
port on a private network (Kubernetes pod network, a scrape-only listener behind a firewall).
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from core.api.deps import get_credential
from core.counters import REGISTRY
from core.keystone.policy import Rule, enforce, register
from core.metrics.collect import DatabaseCollector

register((Rule("monitor:metrics:get", "admin", ("system",),
               description="Scrape the controller's Prometheus metrics (every project's usage)."),))

router = APIRouter(tags=["metrics"])


class Scrape:
    """This process's counters plus the database's families, as one registry-like object."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def collect(self) -> Any:
        yield from REGISTRY.collect()
        yield from DatabaseCollector(self.db).collect()


def render(db: Any) -> bytes:
    return generate_latest(Scrape(db))  # type: ignore[arg-type]


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    if not request.app.state.settings.metrics_open:
        enforce(await get_credential(request), "monitor:metrics:get")
    body = await run_in_threadpool(render, request.app.state.db)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
