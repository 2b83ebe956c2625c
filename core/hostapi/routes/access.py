"""Who may act as a host's agent, and the JSON body every agent route reads."""
from __future__ import annotations

from typing import Any

from fastapi import Body

from core.api.context import Credential
from core.errors import ForbiddenError, InputParameterError, ResourceNotFoundError
from core.keystone.policy import enforce
from core.region.enroll import binding_host
from core.region.models import Host

AnyBody = Body(default=None)


def guard(session: Any, cred: Credential, host_id: str) -> Host:
    """The host ``cred`` may act as the agent of: its bound host, or any host for an admin."""
    bound = binding_host(session, cred.user_id)
    if bound is None:
        enforce(cred, "compute:hosts:agent")
    elif bound != host_id:
        raise ForbiddenError(f"this agent acts for host {bound} only, not {host_id}")
    return agent_host(session, host_id)


def agent_host(session: Any, host_id: str) -> Host:
    """The host row of an agent's request whose ``guard`` passed earlier in the same request."""
    host = session.get(Host, host_id)
    if host is None:
        raise ResourceNotFoundError(f"host {host_id} not found")
    if host.target == "executor":  # its items are the controller's (core/hostapi/executor.py), not an agent's
        raise ForbiddenError(f"host {host.name} is run by the controller's executor, not by an agent")
    return host


def json_body(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InputParameterError("body: expected a JSON object")
    return body
