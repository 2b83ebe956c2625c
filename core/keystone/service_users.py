"""Service users: identities other services create for their own daemons (host agents today).

Other services call these functions instead of writing keystone's tables:

    user_id, password = ensure_service_user(session, "host-agent-1a2b3c4d-node-2", "host-agents", "reader",
                                            "agent of host node-2 (…)")   # created, or re-keyed
    delete_service_user(session, user_id)   # gone: its tokens fail validation (401) from now on

Both run in the caller's transaction (the caller commits), bump the token-cache revision (every
replica drops its cached credentials within ``core.keystone.auth.REVISION_POLL_S``) and add an audit
record. A service user lives in the ``Default`` domain and holds one role on one project of it.
"""
from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.audit import record
from core.db.base import utcnow
from core.errors import InputParameterError
from core.keystone.assignments import bump_revision
from core.keystone.holdings import register_service_project
from core.keystone.models import Assignment, GroupMember, Project, Role, User, UserCredential
from core.keystone.passwords import hash_password

if TYPE_CHECKING:
    from core.api.context import Credential

__all__ = ["SERVICE_DOMAIN", "delete_service_user", "ensure_service_user", "service_user_id"]

SERVICE_DOMAIN = "default"


def ensure_service_user(session: Session, name: str, project_name: str, role_name: str, description: str,
                        *, project_description: str = "", cred: Credential | None = None) -> tuple[str, str]:
    """Create (or re-key) user ``name`` holding ``role_name`` on ``project_name``: (user id, new password).

    The project is created when missing; the role must exist (``ocadm init``/``ocadm upgrade`` seed
    it). A re-keyed user is enabled again and its lockout cleared; the old password stops working.
    """
    role = session.scalar(select(Role).where(Role.name == role_name, Role.domain_id == ""))
    if role is None:
        raise InputParameterError(f"role {role_name} is missing: run `ocadm init` or `ocadm upgrade`")
    register_service_project(project_name)
    project = session.scalar(select(Project).where(Project.domain_id == SERVICE_DOMAIN,
                                                   Project.name == project_name))
    if project is None:
        project = Project(name=project_name, domain_id=SERVICE_DOMAIN, description=project_description)
        session.add(project)
        session.flush()
        record(session, cred, service="identity", action="create", obj_type="project", obj_id=project.id,
               obj_name=project.name, notes="service users' project")
    user = session.scalar(select(User).where(User.domain_id == SERVICE_DOMAIN, User.name == name))
    password = secrets.token_urlsafe(24)
    created = user is None
    if user is None:
        user = User(name=name, domain_id=SERVICE_DOMAIN, description=description)
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
    bump_revision(session)
    session.flush()
    record(session, cred, service="identity", action="create" if created else "update", obj_type="user",
           obj_id=user.id, obj_name=user.name,
           notes=f"service user, {role_name} of project {project_name}" + ("" if created else "; new password"))
    return user.id, password


def service_user_id(session: Session, name: str) -> str | None:
    """The id of service user ``name``, or None when there is none."""
    return session.scalar(select(User.id).where(User.domain_id == SERVICE_DOMAIN, User.name == name))


def delete_service_user(session: Session, user_id: str, *, cred: Credential | None = None) -> str | None:
    """Delete a user with its role assignments, group memberships and credentials; its name, or None
    when there was no such user. Tokens it holds fail validation from the next revision poll on."""
    user = session.get(User, user_id)
    if user is None:
        return None
    name = user.name
    session.execute(delete(Assignment).where(Assignment.actor_type == "user", Assignment.actor_id == user_id))
    session.execute(delete(GroupMember).where(GroupMember.user_id == user_id))
    session.execute(delete(UserCredential).where(UserCredential.user_id == user_id))
    session.delete(user)
    bump_revision(session)
    session.flush()
    record(session, cred, service="identity", action="delete", obj_type="user", obj_id=user_id, obj_name=name,
           notes="service user")
    return name
