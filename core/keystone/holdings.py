"""What a project holds, so that deleting it cannot orphan anything (Cloudpods refuses with 403).

A project is protected when it is one of the platform's own (the admin project ``system``, the
projects of service users such as the hosts' agents), when users or groups hold roles on it, or
when another service still keeps resources in it. Keystone imports no other service: each service
registers a counter here (``register_holder``) when its code is loaded, and services that run
daemons register their service users' project (``register_service_project``).
"""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.keystone.models import Assignment, Project

# (session, project id) -> {"servers": 2, ...}; zero counts may be left out
Holder = Callable[[Session, str], dict[str, int]]
_HOLDERS: dict[str, Holder] = {}
SERVICE_DOMAIN = "default"
_SERVICE_PROJECTS: set[str] = set()


def register_holder(service: str, fn: Holder) -> None:
    _HOLDERS[service] = fn


def register_service_project(name: str) -> None:
    """``name`` (in the Default domain) holds a service's own identities: never deletable."""
    _SERVICE_PROJECTS.add(name)


def platform_role(p: Project) -> str | None:
    from core.keystone.auth import ADMIN_PROJECT_DOMAIN, ADMIN_PROJECT_NAME

    if (p.domain_id, p.name) == (ADMIN_PROJECT_DOMAIN, ADMIN_PROJECT_NAME):
        return "the admin project (system administrators log in to it)"
    if p.domain_id == SERVICE_DOMAIN and p.name in _SERVICE_PROJECTS:
        return "the project of the platform's service users (the hosts' agents log in to it)"
    return None


def holdings(session: Session, project_id: str) -> dict[str, int]:
    """Everything that keeps project ``project_id`` alive, as counts by kind (only nonzero ones)."""
    out: dict[str, int] = {}
    for actor in ("user", "group"):
        n = session.scalar(select(func.count(func.distinct(Assignment.actor_id))).where(
            Assignment.target_type == "project", Assignment.target_id == project_id,
            Assignment.actor_type == actor)) or 0
        if n:
            out[f"{actor}s"] = int(n)
    for fn in _HOLDERS.values():
        for kind, n in fn(session, project_id).items():
            if n:
                out[kind] = out.get(kind, 0) + int(n)
    return out


def refusal(session: Session, p: Project) -> str | None:
    """Why project ``p`` may not be deleted, or None."""
    role = platform_role(p)
    if role:
        return f"project {p.name} is {role}"
    held = holdings(session, p.id)
    if held:
        what = ", ".join(f"{n} {kind}" for kind, n in sorted(held.items()))
        return f"project {p.name} still holds {what}: remove them first"
    return None
