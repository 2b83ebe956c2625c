"""The service catalog: every service of the one process, at its gateway path (API.md §1)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.keystone.models import Endpoint, Service

# (type, name, path under the public URL, description)
SERVICES: tuple[tuple[str, str, str, str], ...] = (
    ("identity", "keystone", "/api/s/identity/v3", "Identity: users, projects, roles, tokens"),
    ("compute_v2", "region2", "/api/s/compute_v2", "Region: resources and tasks"),
    ("image", "glance", "/api/s/image/v1", "Images (Cloudpods v1; OpenStack v2 at the image root)"),
    ("scheduler", "scheduler", "/api/s/scheduler", "Scheduler: placement and forecast"),
    # Cloudpods' logger service (`actions`): served by the identity router, so a client that asks
    # the catalog for type "log" finds GET .../actions there.
    ("log", "logger", "/api/s/identity/v3", "Audit log (Cloudpods' logger actions)"),
)
INTERFACES = ("public", "internal", "admin")


def build_catalog(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Service, Endpoint).join(Endpoint, Endpoint.service_id == Service.id)
        .where(Service.enabled.is_(True), Endpoint.enabled.is_(True))
        .order_by(Service.type, Endpoint.interface)
    ).all()
    by_service: dict[str, dict[str, Any]] = {}
    for svc, ep in rows:
        entry = by_service.setdefault(svc.id, {"id": svc.id, "type": svc.type, "name": svc.name, "endpoints": []})
        entry["endpoints"].append({"id": ep.id, "interface": ep.interface, "region": ep.region_id,
                                   "region_id": ep.region_id, "url": ep.url})
    return list(by_service.values())
