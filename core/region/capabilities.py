"""``GET /capabilities`` and ``GET /zones/<id>/capability``: what a server-create can ask for here.

Cloudpods' web console and SDKs read these before a create (which hypervisors, storage types,
brands are usable). Everything is computed from the rows the caller's cloud has now: enabled
hosts give hypervisors, CPU architectures and usability, enabled storages attached to them give
storage types (``<storage_type>/<medium_type>``, Cloudpods' spelling, also per hypervisor).
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.api.deps import CredentialDep, SessionDep
from core.keystone.policy import enforce
from core.region.common import json_response
from core.region.models import Host, HostStorage, Network, Storage, Wire

router = APIRouter()

# host_type -> Cloudpods' hypervisor name; hypervisor -> brand
_HYPERVISOR = {"hypervisor": "kvm"}
_BRAND = {"kvm": "OneCloud", "baremetal": "OneCloud", "container": "OneCloud", "esxi": "VMware",
          "aws": "Aws", "cloudpods": "Cloudpods"}


def capabilities(session: Session, cred: Any, zone_id: str | None = None) -> dict[str, Any]:
    """What ``cred``'s project can create: this cloud's hosts and those of the cloud accounts it
    may use (another project's AWS zones are neither its hypervisors nor its capacity)."""
    from sqlalchemy import or_

    from core.region.scheduling import usable_managers

    hosts = select(Host.id, Host.host_type, Host.cpu_arch, Host.host_status).where(
        Host.enabled.is_(True), or_(Host.manager_id.is_(None), Host.manager_id.in_(usable_managers(session, cred))))
    if zone_id is not None:
        hosts = hosts.where(Host.zone_id == zone_id)
    rows = session.execute(hosts).all()
    by_host = {r.id: _HYPERVISOR.get(r.host_type, r.host_type) for r in rows}
    hypervisors = sorted(set(by_host.values()))
    stor = (select(HostStorage.host_id, Storage.storage_type, Storage.medium_type)
            .join(Storage, Storage.id == HostStorage.storage_id).where(Storage.enabled.is_(True)))
    if zone_id is not None:
        stor = stor.where(Storage.zone_id == zone_id)
    per_hv: dict[str, set[str]] = {}
    for host_id, stype, medium in session.execute(stor):
        if host_id in by_host:
            per_hv.setdefault(by_host[host_id], set()).add(f"{stype}/{medium}")
    types = sorted({t for s in per_hv.values() for t in s})
    nets = select(Network.id).join(Wire, Wire.id == Network.wire_id)
    if zone_id is not None:
        nets = nets.where(Wire.zone_id == zone_id)
    brands = sorted({_BRAND.get(h, h.capitalize()) for h in hypervisors})
    return {
        "hypervisors": hypervisors,
        "brands": brands,
        "enabled_brands": brands,
        "disabled_brands": [],
        "compute_engine_brands": brands,
        "storage_types": types,
        "data_storage_types": types,
        "storage_types2": {h: sorted(s) for h, s in per_hv.items()},
        "data_storage_types2": {h: sorted(s) for h, s in per_hv.items()},
        "gpu_models": [],
        "host_cpu_archs": sorted({r.cpu_arch for r in rows if r.cpu_arch}),
        "sched_policy_support": True,
        "usable": any(r.host_status == "online" for r in rows),
        "available_host_count": sum(1 for r in rows if r.host_status == "online"),
        "network_count": len(session.scalars(nets).all()),
    }


@router.get("/capabilities")
def get_capabilities(request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    enforce(cred, "compute:capabilities:get")
    zone = request.query_params.get("zone") or request.query_params.get("zone_id")
    zone_id = None
    if zone:
        from core.region.registry import get_manager

        m = get_manager("zones")
        zone_id = m.fetch(session, cred, zone).id
    return json_response(capabilities(session, cred, zone_id))
