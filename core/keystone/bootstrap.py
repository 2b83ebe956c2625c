"""First-run identity data: Default domain, system project, roles, admin user, catalog."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.keystone.auth import IMPLIED_ROLES
from core.keystone.catalog import INTERFACES, SERVICES
from core.keystone.models import (
    Assignment,
    Domain,
    Endpoint,
    ImpliedRole,
    Project,
    Region,
    Revision,
    Role,
    Service,
    User,
)
from core.keystone.passwords import hash_password

DEFAULT_ROLES = ("admin", "member", "reader")


def _grant(session: Session, user_id: str, target_type: str, target_id: str, role_id: str) -> None:
    key = {"actor_type": "user", "actor_id": user_id, "target_type": target_type,
           "target_id": target_id, "role_id": role_id}
    if session.get(Assignment, key) is None:
        session.add(Assignment(**key))


def bootstrap(session: Session, *, admin_password: str, public_url: str, region_id: str) -> User:
    """Create or repair the bootstrap data (idempotent); resets the admin password."""
    domain = session.get(Domain, "default")
    if domain is None:
        domain = Domain(id="default", name="Default", description="The default domain")
        session.add(domain)
        session.flush()
    project = session.scalar(select(Project).where(Project.domain_id == "default", Project.name == "system"))
    if project is None:
        project = Project(name="system", domain_id="default", description="Bootstrap project for system administrators")
        session.add(project)
    roles: dict[str, Role] = {}
    for name in DEFAULT_ROLES:
        role = session.scalar(select(Role).where(Role.name == name, Role.domain_id == ""))
        if role is None:
            role = Role(name=name)
            session.add(role)
        roles[name] = role
    session.flush()
    for prior, implied in IMPLIED_ROLES.items():
        for name in implied[:1]:  # admin ⊃ member, member ⊃ reader: the closure is computed
            key = {"prior_role_id": roles[prior].id, "implied_role_id": roles[name].id}
            if session.get(ImpliedRole, key) is None:
                session.add(ImpliedRole(**key))
    if session.get(Revision, 1) is None:
        session.add(Revision(id=1, revision=0))
    admin = session.scalar(select(User).where(User.domain_id == "default", User.name == "admin"))
    if admin is None:
        admin = User(name="admin", domain_id="default")
        session.add(admin)
    admin.password_hash = hash_password(admin_password)
    admin.enabled = True
    admin.failed_logins = 0
    admin.locked_until = None
    admin.password_changed_at = utcnow()
    session.flush()
    admin.default_project_id = project.id
    _grant(session, admin.id, "project", project.id, roles["admin"].id)
    _grant(session, admin.id, "domain", "default", roles["admin"].id)
    _grant(session, admin.id, "system", "all", roles["admin"].id)
    if session.get(Region, region_id) is None:
        session.add(Region(id=region_id, description="Default region"))
    ensure_catalog(session, public_url=public_url, region_id=region_id)
    session.flush()
    return admin


def ensure_catalog(session: Session, *, public_url: str, region_id: str) -> None:
    """Point every service's endpoints at ``public_url`` (re-run when the port changes)."""
    base = public_url.rstrip("/")
    for stype, sname, path, desc in SERVICES:
        svc = session.scalar(select(Service).where(Service.type == stype, Service.name == sname))
        if svc is None:
            svc = Service(type=stype, name=sname, description=desc)
            session.add(svc)
            session.flush()
        existing = {e.interface: e for e in session.scalars(select(Endpoint).where(Endpoint.service_id == svc.id))}
        for iface in INTERFACES:
            ep = existing.get(iface)
            if ep is None:
                session.add(Endpoint(service_id=svc.id, interface=iface, region_id=region_id, url=base + path))
            else:
                ep.url, ep.region_id = base + path, region_id
