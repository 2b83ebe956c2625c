"""The security-group rules of every guest port of a host, as its agent enforces them."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from core.api.deps import CredentialDep, SessionDep
from core.host_protocol import dump
from core.hostapi.routes.access import guard
from core.region.common import json_response
from core.region.secgroups import host_secgroups

router = APIRouter(prefix="/agent")


def rules_if_moved(s: Any, host: Any, applied: int | None, wanted: bool) -> Any:
    """The host's security groups in the agent's shape, when it asked for them and its version moved."""
    if not wanted or applied is None or int(host.secgroup_version or 0) == applied:
        return None
    return dump(host_secgroups(s, host))


@router.get("/hosts/{host_id}/secgroups")
def secgroups(host_id: str, session: SessionDep, cred: CredentialDep) -> Response:
    """What the host's agent enforces (core.host_protocol.HostSecgroups): all its guests' ports."""
    host = guard(session, cred, host_id)
    return json_response({"secgroups": dump(host_secgroups(session, host))})
