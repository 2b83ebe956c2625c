"""Console tokens: issued for one server, one user and one protocol; spent by their first use.

    token, row = issue(session, cred, server, "vnc")          # 600 s, sha256 stored, audited
    row = redeem(session, token, server_id=..., protocol="vnc", user_id=None)   # 401/403 else

Only the SHA-256 of a token is stored, so any replica validates it and a database dump opens
nothing. A websocket from a browser carries no keystone token: the console token alone admits
it, once. A client that does authenticate (climc sends X-Auth-Token) must be the token's user.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.audit import record
from core.console.models import ConsoleSession
from core.db.base import utcnow
from core.errors import (
    ConflictError,
    ForbiddenError,
    InputParameterError,
    InvalidStatusError,
    UnauthorizedError,
    UnsupportedOperationError,
)
from core.host_wake import wake_on_commit

TTL_S = 600
PROTOCOLS = ("vnc", "serial")
# console protocol -> the host capability it needs (drivers.base.Capability values)
CAPABILITY = {"vnc": "vnc", "serial": "serial_console"}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(session: Session, cred: Credential, server: Any, protocol: str) -> tuple[str, ConsoleSession]:
    """A new token for ``server`` (a running server whose host declares the protocol's capability)."""
    from core.region.models import Host

    if protocol not in PROTOCOLS:
        raise InputParameterError(f"protocol: must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    host = session.get(Host, server.host_id) if server.host_id else None
    if host is None:
        raise InvalidStatusError(f"server {server.name} is on no host yet: it has no console")
    if CAPABILITY[protocol] not in set(host.capabilities or ()):
        raise UnsupportedOperationError(
            f"{protocol} console: host {host.name} (driver {host.driver or 'unknown'}) does not support "
            f"{CAPABILITY[protocol]}", host=host.name, driver=host.driver or "unknown",
            capability=CAPABILITY[protocol])
    if server.status != "running":
        raise InvalidStatusError(f"server {server.name} is {server.status}: start it to reach its console")
    if host.host_status != "online":
        raise ConflictError(f"host {host.name} of server {server.name} is {host.host_status}: its agent "
                            "cannot open a console now")
    token = secrets.token_urlsafe(32)
    row = ConsoleSession(token_sha256=digest(token), server_id=server.id, host_id=host.id, user_id=cred.user_id,
                         tenant_id=server.tenant_id or "", protocol=protocol,
                         expires_at=utcnow() + timedelta(seconds=TTL_S))
    session.add(row)
    session.flush()
    record(session, cred, service="compute", action=f"console-token-{protocol}", obj_type="server",
           obj_id=server.id, obj_name=server.name, notes=f"console session {row.id} (expires in {TTL_S} s)")
    return token, row


def issue_machine(session: Session, cred: Credential, host: Any) -> tuple[str, ConsoleSession]:
    """A new token for the serial console of a bare-metal machine itself (``webconsole-baremetal``):
    whatever runs on it, or nothing (a machine being prepared). The session's ``server_id`` is ""."""
    if CAPABILITY["serial"] not in set(host.capabilities or ()):
        raise UnsupportedOperationError(
            f"serial console: host {host.name} (driver {host.driver or 'unknown'}) does not support "
            f"{CAPABILITY['serial']}: a machine's serial console is reached through IPMI serial-over-LAN; Redfish "
            "defines no console a client can open (register the machine by its IPMI address for one)", host=host.name,
            driver=host.driver or "unknown", capability=CAPABILITY["serial"])
    if host.host_status != "online":
        raise ConflictError(f"host {host.name} is {host.host_status}: its BMC does not answer now "
                            "(climc host-ipmi-info shows why)")
    token = secrets.token_urlsafe(32)
    row = ConsoleSession(token_sha256=digest(token), server_id="", host_id=host.id, user_id=cred.user_id,
                         tenant_id="", protocol="serial", expires_at=utcnow() + timedelta(seconds=TTL_S))
    session.add(row)
    session.flush()
    record(session, cred, service="compute", action="console-token-serial", obj_type="host", obj_id=host.id,
           obj_name=host.name, notes=f"console session {row.id} (expires in {TTL_S} s)")
    return token, row


def redeem(session: Session, token: str, *, server_id: str, protocol: str, user: Credential | None,
           relay_url: str = "", host_id: str = "") -> ConsoleSession:
    """Spend ``token`` for a websocket to ``server_id``'s ``protocol`` console.

    Unknown, expired or spent: 401. Another server, protocol or (an authenticated) user: 403, and
    the token is spent all the same (a token shown to the wrong place is burnt). The agent of the
    server's host is told on its next long poll (``connecting``)."""
    if not token or len(token) > 256:
        raise UnauthorizedError("console token missing")
    row = session.scalar(select(ConsoleSession).where(ConsoleSession.token_sha256 == digest(token))
                         .with_for_update())
    if row is None:
        raise UnauthorizedError("console token unknown")
    now = utcnow()
    if row.used_at is not None:
        _refuse(session, row, user, "a console token is for one connection only: it was used already")
        raise UnauthorizedError("console token already used")
    row.used_at = now
    if row.expires_at <= now:
        _refuse(session, row, user, "console token expired")
        raise UnauthorizedError(f"console token expired (tokens live {TTL_S} s)")
    if host_id and (row.server_id or row.host_id != host_id):
        _refuse(session, row, user, f"presented for machine {host_id}")
        raise ForbiddenError("console token is not for this machine's console")
    if not host_id and row.server_id != server_id:
        _refuse(session, row, user, f"presented for server {server_id}")
        raise ForbiddenError("console token is for another server")
    if row.protocol != protocol:
        _refuse(session, row, user, f"presented for a {protocol} console")
        raise ForbiddenError(f"console token is for a {row.protocol} console, not {protocol}")
    if user is not None and user.user_id != row.user_id:
        _refuse(session, row, user, f"presented by user {user.user_name}")
        raise ForbiddenError("console token belongs to another user")
    row.status, row.relay_url = "connecting", relay_url
    wake_on_commit(session, [row.host_id])  # the host's long polls in this replica (core.host_wake)
    record(session, user, service="compute", action=f"console-open-{row.protocol}", **_obj(row),
           notes=f"console session {row.id} of user {row.user_id}")
    return row


def _obj(row: ConsoleSession) -> dict[str, Any]:
    """What a session's audit records are about: its server, or the machine itself."""
    return {"obj_type": "server", "obj_id": row.server_id} if row.server_id else \
        {"obj_type": "host", "obj_id": row.host_id}


def _refuse(session: Session, row: ConsoleSession, user: Credential | None, why: str) -> None:
    if row.status == "issued":
        row.status, row.reason = "failed", why[:255]
    record(session, user, service="compute", action=f"console-open-{row.protocol}", **_obj(row), success=False,
           notes=f"console session {row.id}: {why}"[:4000])
    session.commit()  # the refusal (and the spent token) stays, whatever the caller raises


def finish(session: Session, session_id: str, *, status: str, reason: str = "", endpoint: str = "",
           up: int = 0, down: int = 0) -> None:
    """Record how a session went (``open``, ``closed`` or ``failed``); closing is audited."""
    row = session.get(ConsoleSession, session_id)
    if row is None:
        return
    row.status = status
    if reason:
        row.reason = reason[:255]
    if endpoint:
        row.endpoint = endpoint[:255]
    row.bytes_up, row.bytes_down = up, down
    if status in ("closed", "failed"):
        row.closed_at = utcnow()
        record(session, None, service="compute", action=f"console-close-{row.protocol}", **_obj(row),
               success=status == "closed",
               notes=(f"console session {row.id} of user {row.user_id}: {status}"
                      f"{': ' + reason if reason else ''}; {up} bytes up, {down} down")[:4000])
    session.commit()


KEEP_S = 24 * 3600  # a session row outlives its use by a day (the audit records keep the history)
KEEP_OPEN_S = 7 * 24 * 3600  # an "open" row this old lost its replica (killed mid-session)


def purge(session: Session) -> int:
    """Periodic job (core/tasks/periodic.py): drop spent or abandoned session rows."""
    from sqlalchemy import and_, delete, or_

    now = utcnow()
    begin = now - timedelta(seconds=KEEP_S)
    res = session.execute(delete(ConsoleSession).where(or_(
        and_(ConsoleSession.status != "open", ConsoleSession.created_at < begin),
        ConsoleSession.created_at < now - timedelta(seconds=KEEP_OPEN_S))))
    session.commit()
    return int(res.rowcount or 0)  # type: ignore[attr-defined]
