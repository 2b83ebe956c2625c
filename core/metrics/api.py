"""Usage history queries, in the region's API (``/api/s/compute_v2``):

    GET /servers/<id|name>/metrics?since=1h&metric=cpu_percent&metric=mem_mb
    GET /hosts/<id|name>/metrics?since=24h

Whoever may see the server (or host) may read its history: the row is fetched through its
manager (another tenant's server is a 404) and the ``get`` rule enforced on it.
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from core.api.deps import CredentialDep, SessionDep
from core.metrics.history import parse_since, query
from core.region.common import json_response
from core.region.registry import get_manager

router = APIRouter()


def _history(request: Request, session: SessionDep, cred: CredentialDep, plural: str, obj_type: str,
             ident: str) -> Response:
    since = parse_since(request.query_params.get("since"))
    wanted = [m for v in request.query_params.getlist("metric") for m in v.split(",") if m] or None
    m = get_manager(plural)
    row = m.fetch(session, cred, ident)
    m.enforce(cred, "get", row)
    out = query(session, row.id, obj_type, since, wanted)
    out["name"] = row.name
    return json_response({"metrics": out})


@router.get("/servers/{ident}/metrics")
def server_metrics(ident: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    return _history(request, session, cred, "servers", "server", ident)


@router.get("/hosts/{ident}/metrics")
def host_metrics(ident: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    return _history(request, session, cred, "hosts", "host", ident)
