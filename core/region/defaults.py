"""What ``ocadm init`` creates so a newcomer's first server needs nothing else set up:

a zone, a wire in it, a local storage (the in-process agent's host attaches it) and a shared
private network on the wire — ``climc server-create vm1 --disk IMAGE --net default`` then works
against ``ocadm serve --with-agent``. Everything goes through the region's managers (the same
validation as the API) and is idempotent: an existing object of that name is left alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Defaults:
    zone: str = "zone0"
    wire: str = "default"
    storage: str = "default-local"
    network: str = "default"
    prefix: str = "10.199.0.0/24"
    start: str = "10.199.0.10"
    end: str = "10.199.0.250"
    gateway: str = "10.199.0.1"
    dns: str = "10.199.0.1"


DEFAULTS = Defaults()


def _admin_cred(session: Session) -> Any:
    from core.api.context import Credential
    from core.keystone.models import Project, User

    admin = session.scalar(select(User).where(User.domain_id == "default", User.name == "admin"))
    project = session.scalar(select(Project).where(Project.domain_id == "default", Project.name == "system"))
    if admin is None or project is None:
        raise RuntimeError("the admin user and system project must exist first (keystone bootstrap)")
    return Credential(token="", user_id=admin.id, user_name="admin", user_domain_id="default",
                      user_domain_name="Default", scope="project", roles=("admin", "member", "reader"),
                      project_id=project.id, project_name="system", project_domain_id="default",
                      project_domain_name="Default")


def create_defaults(session: Session, d: Defaults = DEFAULTS) -> list[str]:
    """Create what is missing; returns one line per object created (for init's output)."""
    from core.region.models import Network, Storage, Wire, Zone
    from core.region.registry import get_manager

    cred = _admin_cred(session)
    made: list[str] = []

    def ensure(plural: str, model: Any, name: str, body: dict[str, Any], what: str) -> None:
        if session.scalar(select(model.id).where(model.name == name)) is None:
            get_manager(plural).create(session, cred, {"name": name, **body}, 1)
            session.flush()
            made.append(what)

    ensure("zones", Zone, d.zone, {}, f"zone {d.zone}")
    ensure("wires", Wire, d.wire, {"zone": d.zone, "bandwidth": 1000}, f"wire {d.wire} in {d.zone}")
    ensure("storages", Storage, d.storage, {"zone": d.zone, "capacity": 1024 * 1024},
           f"storage {d.storage} (local)")
    ensure("networks", Network, d.network, {"wire": d.wire, "guest_ip_start": d.start, "guest_ip_end": d.end,
                                            "guest_ip_mask": int(d.prefix.rsplit("/", 1)[1]),
                                            "guest_gateway": d.gateway, "guest_dns": d.dns, "is_public": True},
           f"network {d.network} {d.start}-{d.end} (shared)")
    return made
