"""Enrolling hosts: join tokens (counted, expiring), and the service user each host agent acts as.

    token, row = create_join_token(session, zone="default", ttl_s=3600, uses=20)  # plain token shown once
    creds = redeem_join_token(session, token, host_name="node-2")  # the agent's user + password
    binding_host(session, cred.user_id)                             # -> the one host it may touch
    unenroll_host(session, host_id)                                 # its agent's user and binding gone

A token enrols up to ``uses`` hosts (one per redemption: a Kubernetes agent DaemonSet shares one
token among its nodes); the redemption count is taken under the token row's lock, so two hosts
joining at once cannot both take the last use. The agent's user is a *reader* of the
``host-agents`` project only (``core.keystone.service_users``): every tenant's objects are out of
its reach through the ordinary API; the agent routes (core.hostapi.routes) let it act on its own host
and nothing else.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit import record
from core.db.base import utcnow
from core.db.engine import begin_write
from core.errors import InputParameterError, UnauthorizedError
from core.keystone.holdings import register_service_project
from core.region.models.agents import AgentBinding, JoinToken

if TYPE_CHECKING:
    from core.api.context import Credential

AGENT_PROJECT = "host-agents"
register_service_project(AGENT_PROJECT)  # keystone refuses to delete it (every agent logs in to it)
AGENT_ROLE = "reader"
TOKEN_PREFIX = "cpj1."
MIN_TTL_S, MAX_TTL_S = 60, 7 * 24 * 3600
MAX_USES = 1000
_HOST_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")
_DURATION_RE = re.compile(r"^([0-9]{1,9})([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class AgentCredentials:
    host_id: str
    host_name: str
    zone_id: str
    user_name: str
    user_id: str
    password: str
    project_name: str = AGENT_PROJECT
    domain_name: str = "Default"


@dataclass(frozen=True)
class JoinTokenInfo:
    """What may be shown about a token after its creation (never the token itself)."""

    id: str
    zone_id: str
    uses: int
    used: int
    expires_at: datetime
    last_used_at: datetime | None
    created_at: datetime
    created_by: str
    description: str

    @property
    def state(self) -> str:
        if self.used >= self.uses:
            return "used up"
        return "expired" if self.expires_at < utcnow() else "valid"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_ttl(value: str) -> int:
    """Seconds of ``90s``, ``30m``, ``1h``, ``2d`` or plain seconds, between 60 s and 7 d."""
    m = _DURATION_RE.match(value.strip().lower()) if isinstance(value, str) else None
    if m is None:
        raise InputParameterError(f"--ttl {value!r}: expected seconds or a number with s, m, h or d "
                                  "(90s, 30m, 1h, 2d)")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    _check_ttl(seconds, shown=f"--ttl {value}")
    return seconds


def _check_ttl(seconds: int, shown: str = "ttl") -> None:
    if not MIN_TTL_S <= seconds <= MAX_TTL_S:
        raise InputParameterError(f"{shown}: must be between 60s and 7d ({MAX_TTL_S} s)")


def _check_uses(uses: int) -> None:
    if isinstance(uses, bool) or not isinstance(uses, int) or not 1 <= uses <= MAX_USES:
        raise InputParameterError(f"--uses {uses}: must be between 1 and {MAX_USES} (hosts one token enrols)")


def create_join_token(session: Session, *, zone: str, ttl_s: int, uses: int = 1, created_by: str = "",
                      description: str = "", cred: Credential | None = None) -> tuple[str, JoinToken]:
    """A new token for ``zone`` that enrols up to ``uses`` hosts; the plain token is returned once and
    stored hashed. Audited; the caller commits."""
    from core.region.models import Zone

    _check_ttl(ttl_s)
    _check_uses(uses)
    begin_write(session)  # a running controller writes too: queue on the lock, not fail on a stale read
    z = session.scalar(select(Zone).where((Zone.id == zone) | (Zone.name == zone)))
    if z is None:
        raise InputParameterError(f"zone {zone!r} not found")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(24)
    row = JoinToken(token_sha256=_digest(plain), zone_id=z.id, expires_at=utcnow() + timedelta(seconds=ttl_s),
                    uses=uses, used=0, created_by=created_by[:255], description=description[:255])
    session.add(row)
    session.flush()
    record(session, cred, service="compute", action="create", obj_type="join_token", obj_id=row.id,
           obj_name=description[:255],
           notes=f"zone {z.name}, {uses} use(s), expires {row.expires_at.isoformat(timespec='seconds')}"
                 + (f", by {created_by}" if created_by else ""))
    return plain, row


def list_join_tokens(session: Session) -> list[JoinTokenInfo]:
    """Every stored token, newest first, as it may be shown (no secret: only its hash is stored)."""
    rows = session.scalars(select(JoinToken).order_by(JoinToken.created_at.desc(), JoinToken.id))
    return [JoinTokenInfo(id=r.id, zone_id=r.zone_id, uses=r.uses, used=r.used, expires_at=r.expires_at,
                          last_used_at=r.used_at, created_at=r.created_at, created_by=r.created_by,
                          description=r.description) for r in rows]


def redeem_join_token(session: Session, token: str, *, host_name: str, access_mac: str = "") -> AgentCredentials:
    """Spend one use of ``token``: create (or re-key) the host's service user and register the host row.

    Every redemption counts, a re-join of a host already enrolled by this token too. The caller
    commits. A used-up, expired or unknown token is a 401 that says which.
    """
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
        raise UnauthorizedError("invalid join token")
    # the row lock (the write lock on SQLite) serialises redemptions of one token across replicas:
    # the count cannot overshoot
    begin_write(session)
    row = session.scalar(select(JoinToken).where(JoinToken.token_sha256 == _digest(token)).with_for_update())
    if row is None:
        raise UnauthorizedError("invalid join token")
    if row.used >= row.uses:
        raise UnauthorizedError(f"join token used up ({row.used} of {row.uses} uses): create another "
                                "with `ocadm token create --uses N`")
    if row.expires_at < utcnow():
        raise UnauthorizedError("join token expired (create another with `ocadm token create`)")
    creds = enroll_host(session, zone_id=row.zone_id, host_name=host_name, access_mac=access_mac)
    row.used += 1
    row.used_at, row.host_id = utcnow(), creds.host_id
    return creds


def enroll_host(session: Session, *, zone_id: str, host_name: str, access_mac: str = "") -> AgentCredentials:
    """The host row (created offline until its agent registers) and its agent's user, new password."""
    from core.keystone.service_users import ensure_service_user
    from core.region.models import Host

    if not isinstance(host_name, str) or not _HOST_NAME_RE.match(host_name):
        raise InputParameterError(f"host name {host_name!r}: 1-63 of [A-Za-z0-9_.-], starting with a letter")
    host = None
    if access_mac:
        host = session.scalar(select(Host).where(Host.access_mac == access_mac))
    if host is None:
        host = session.scalar(select(Host).where(Host.name == host_name))
    if host is None:
        host = Host(name=host_name, zone_id=zone_id, status="init", host_status="offline", enabled=True,
                    access_mac=access_mac)
        session.add(host)
        session.flush()
    user_name = f"host-agent-{host.id[:8]}-{host_name}"[:255]
    user_id, password = ensure_service_user(
        session, user_name, AGENT_PROJECT, AGENT_ROLE, f"agent of host {host_name} ({host.id})",
        project_description="Host agents' service users (readers of nothing but this project)")
    if session.scalar(select(AgentBinding).where(AgentBinding.user_id == user_id)) is None:
        session.add(AgentBinding(user_id=user_id, host_id=host.id))
    session.flush()
    return AgentCredentials(host_id=host.id, host_name=host.name, zone_id=host.zone_id, user_name=user_name,
                            user_id=user_id, password=password)


def unenroll_host(session: Session, host_id: str, *, cred: Credential | None = None) -> list[str]:
    """Remove the agent identities of a host (its bindings and their service users, audited): the
    names of the users deleted. Their tokens and passwords fail (401) from now on; the caller commits."""
    from core.keystone.service_users import delete_service_user

    gone: list[str] = []
    for b in list(session.scalars(select(AgentBinding).where(AgentBinding.host_id == host_id))):
        name = delete_service_user(session, b.user_id, cred=cred)
        session.delete(b)
        if name is not None:
            gone.append(name)
    session.flush()
    return gone


def binding_host(session: Session, user_id: str) -> str | None:
    """The host a service user is the agent of, or None for any other user."""
    return session.scalar(select(AgentBinding.host_id).where(AgentBinding.user_id == user_id))
