"""Enrolling hosts: one-time join tokens, and the service user each host agent acts as.

    token = create_join_token(session, zone="default", ttl_s=3600, created_by="admin")  # shown once
    creds = redeem_join_token(session, token, host_name="node-2")   # the agent's user + password
    binding_host(session, cred.user_id)                               # -> the one host it may touch

The agent's user is a *reader* of the ``host-agents`` project only: every tenant's objects are
out of its reach through the ordinary API; the agent routes (core.hostapi.routes) let it act on its
own host and nothing else.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.errors import InputParameterError, UnauthorizedError
from core.hostapi.models import AgentBinding, JoinToken

AGENT_PROJECT = "host-agents"
AGENT_ROLE = "reader"
TOKEN_PREFIX = "cpj1."
MAX_TTL_S = 7 * 24 * 3600
_HOST_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")


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


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_join_token(session: Session, *, zone: str, ttl_s: int, created_by: str = "",
                      description: str = "") -> tuple[str, JoinToken]:
    """A new one-time token for ``zone``; the plain token is returned once and stored hashed."""
    from core.region.common import begin_write
    from core.region.models import Zone

    if not 60 <= ttl_s <= MAX_TTL_S:
        raise InputParameterError(f"ttl: must be between 60 s and {MAX_TTL_S} s")
    begin_write(session)  # a running controller writes too: queue on the lock, not fail on a stale read
    z = session.scalar(select(Zone).where((Zone.id == zone) | (Zone.name == zone)))
    if z is None:
        raise InputParameterError(f"zone {zone!r} not found")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(24)
    row = JoinToken(token_sha256=_digest(plain), zone_id=z.id, expires_at=utcnow() + timedelta(seconds=ttl_s),
                    created_by=created_by[:255], description=description[:255])
    session.add(row)
    session.flush()
    return plain, row


def redeem_join_token(session: Session, token: str, *, host_name: str, access_mac: str = "") -> AgentCredentials:
    """Spend ``token``: create (or re-key) the host's service user and register the host row.

    The caller commits. A used, expired or unknown token is a 401 that says which.
    """
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
        raise UnauthorizedError("invalid join token")
    row = session.scalar(select(JoinToken).where(JoinToken.token_sha256 == _digest(token)).with_for_update())
    if row is None:
        raise UnauthorizedError("invalid join token")
    if row.used_at is not None:
        raise UnauthorizedError("join token already used (tokens are one-time: create another)")
    if row.expires_at < utcnow():
        raise UnauthorizedError("join token expired (create another with `ocadm token create`)")
    creds = enroll_host(session, zone_id=row.zone_id, host_name=host_name, access_mac=access_mac)
    row.used_at, row.host_id = utcnow(), creds.host_id
    return creds


def enroll_host(session: Session, *, zone_id: str, host_name: str, access_mac: str = "") -> AgentCredentials:
    """The host row (created offline until its agent registers) and its agent's user, new password."""
    from core.keystone.assignments import bump_revision
    from core.keystone.models import Assignment, Project, Role, User
    from core.keystone.passwords import hash_password
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
    project = session.scalar(select(Project).where(Project.domain_id == "default", Project.name == AGENT_PROJECT))
    if project is None:
        project = Project(name=AGENT_PROJECT, domain_id="default",
                          description="Host agents' service users (readers of nothing but this project)")
        session.add(project)
        session.flush()
    role = session.scalar(select(Role).where(Role.name == AGENT_ROLE, Role.domain_id == ""))
    if role is None:
        raise InputParameterError(f"role {AGENT_ROLE} is missing: run `ocadm init` or `ocadm upgrade`")
    user_name = f"host-agent-{host.id[:8]}-{host_name}"[:255]
    user = session.scalar(select(User).where(User.domain_id == "default", User.name == user_name))
    password = secrets.token_urlsafe(24)
    if user is None:
        user = User(name=user_name, domain_id="default", description=f"agent of host {host_name} ({host.id})")
        session.add(user)
    user.password_hash = hash_password(password)
    user.enabled, user.failed_logins, user.locked_until = True, 0, None
    user.password_changed_at = utcnow()
    session.flush()
    user.default_project_id = project.id
    key = {"actor_type": "user", "actor_id": user.id, "target_type": "project", "target_id": project.id,
           "role_id": role.id}
    if session.get(Assignment, key) is None:
        session.add(Assignment(**key))
    if session.scalar(select(AgentBinding).where(AgentBinding.user_id == user.id)) is None:
        session.add(AgentBinding(user_id=user.id, host_id=host.id))
    bump_revision(session)
    session.flush()
    return AgentCredentials(host_id=host.id, host_name=host.name, zone_id=host.zone_id, user_name=user_name,
                            user_id=user.id, password=password)


def binding_host(session: Session, user_id: str) -> str | None:
    """The host a service user is the agent of, or None for any other user."""
    return session.scalar(select(AgentBinding.host_id).where(AgentBinding.user_id == user_id))
