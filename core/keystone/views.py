"""What the identity API answers for each resource: one function per row type, ``(row, request) -> dict``.

Views live here, not in the route modules, so a route that lists another resource's rows (a group's
users, a user's groups and projects, the projects a token may scope to) imports a view, never another
route module. The shapes are Keystone v3's, plus the extra fields Cloudpods' clients read.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from sqlalchemy.orm import object_session

from core.keystone.models import Domain, Endpoint, Group, Policy, Project, Region, Role, Service, User

PREFIX = "/api/s/identity/v3"


def link(request: Request, path: str = "") -> str:
    return str(request.base_url).rstrip("/") + PREFIX + path


def domain_view(d: Domain, request: Request) -> dict[str, Any]:
    return {"id": d.id, "name": d.name, "description": d.description, "enabled": d.enabled, "tags": [],
            "options": {}, "links": {"self": link(request, f"/domains/{d.id}")}}


def project_view(p: Project, request: Request) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "domain_id": p.domain_id, "description": p.description,
            "enabled": p.enabled, "parent_id": p.parent_id or p.domain_id, "is_domain": False,
            "tags": list((p.extra or {}).get("tags", [])),
            "options": {}, "links": {"self": link(request, f"/projects/{p.id}")}}


def user_view(u: User, request: Request) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {**(u.extra or {}),
            "id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": u.enabled, "email": u.email,
            "description": u.description, "default_project_id": u.default_project_id,
            "password_expires_at": None, "options": {},
            "locked": u.locked_until is not None and u.locked_until > now,
            "links": {"self": link(request, f"/users/{u.id}")}}


def group_view(g: Group, request: Request) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "domain_id": g.domain_id, "description": g.description,
            "links": {"self": link(request, f"/groups/{g.id}")}}


def role_view(r: Role, request: Request) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "domain_id": r.domain_id or None, "description": r.description,
            "options": {}, "links": {"self": link(request, f"/roles/{r.id}")}}


def role_brief(r: Role, request: Request) -> dict[str, Any]:
    """A role as role inference names it: id, name, link."""
    return {"id": r.id, "name": r.name, "links": {"self": link(request, f"/roles/{r.id}")}}


def service_view(s: Service, request: Request) -> dict[str, Any]:
    return {"id": s.id, "type": s.type, "name": s.name, "description": s.description, "enabled": s.enabled,
            "links": {"self": link(request, f"/services/{s.id}")}}


def endpoint_view(e: Endpoint, request: Request) -> dict[str, Any]:
    """An endpoint with its service's name and type (what ``endpoint-list`` shows). The service comes
    through the row's session: after the first endpoint of a service it is in the identity map."""
    session = object_session(e)
    svc = session.get(Service, e.service_id) if session is not None else None
    return {"id": e.id, "interface": e.interface, "region": e.region_id or None, "region_id": e.region_id or None,
            "url": e.url, "enabled": e.enabled, "service_id": e.service_id,
            "service_name": svc.name if svc else "", "service_type": svc.type if svc else "",
            "links": {"self": link(request, f"/endpoints/{e.id}")}}


def region_view(r: Region, request: Request) -> dict[str, Any]:
    return {"id": r.id, "description": r.description, "parent_region_id": r.parent_region_id,
            "links": {"self": link(request, f"/regions/{r.id}")}}


def policy_view(p: Policy, request: Request) -> dict[str, Any]:
    return {"id": p.id, "type": p.type, "blob": p.blob, "links": {"self": link(request, f"/policies/{p.id}")}}
