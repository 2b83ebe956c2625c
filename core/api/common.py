"""Routes every service answers: ``GET /version`` and ``GET /ping`` (API.md §3)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from core.version import VERSION


def service_router(service: str) -> APIRouter:
    r = APIRouter(tags=[service])

    # async: answered on the event loop, not through a worker thread (a load balancer's and the
    # agents' probes are the most frequent requests, and the first one came before `ocadm serve`
    # could say it was ready: that hop's first use imported anyio's thread machinery, ~30-100 ms)
    @r.get("/version", response_class=PlainTextResponse, include_in_schema=False)
    async def version() -> str:
        return VERSION

    @r.get("/ping", include_in_schema=False)
    async def ping() -> Response:
        return Response(status_code=204)

    return r


def root_router() -> APIRouter:
    r = service_router("root")

    @r.get("/healthz", include_in_schema=False)
    def healthz(request: Request) -> dict[str, object]:
        from sqlalchemy import text

        try:
            with request.app.state.db.engine.connect() as c:
                c.execute(text("SELECT 1"))
            db_ok = True
        except Exception:
            db_ok = False
        return {"status": "ok" if db_ok else "degraded", "database": db_ok, "version": VERSION}

    return r
