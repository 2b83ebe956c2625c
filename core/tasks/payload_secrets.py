"""A guest's login password inside a queued work item: sealed at rest, opened only for the host.

A work item's payload is a row (``work_items.payload``) that may wait minutes for a host that is
offline; the password in it is sealed with the credential keys when the item is queued, opened
when the item is handed to its agent or executor, and dropped from the row once the host reported.
"""
from __future__ import annotations

from typing import Any

from core.keystone.credkeys import seal, unseal

_FLAG = "__password_sealed__"


def seal_payload(payload: dict[str, Any]) -> dict[str, Any]:
    server = payload.get("server")
    if not isinstance(server, dict) or not server.get("password"):
        return payload
    return {**payload, "server": {**server, "password": seal(str(server["password"]))}, _FLAG: True}


def open_payload(payload: Any) -> Any:
    """The payload as the host contract has it (what the agent parses)."""
    if not isinstance(payload, dict) or not payload.get(_FLAG):
        return payload
    out = {k: v for k, v in payload.items() if k != _FLAG}
    server = dict(out["server"])
    server["password"] = unseal(str(server["password"]))
    out["server"] = server
    return out


def scrub_payload(payload: Any) -> Any:
    """The payload kept after the host reported: without the password."""
    if not isinstance(payload, dict) or not isinstance(payload.get("server"), dict) \
            or not payload["server"].get("password"):
        return payload
    out = {k: v for k, v in payload.items() if k != _FLAG}
    out["server"] = {**payload["server"], "password": None}
    return out
