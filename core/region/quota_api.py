"""Quotas and usages.

    GET  /quotas                      the caller's project (``?project=<id>`` for admins)
    GET  /quotas/projects             every project with a quota row (admins)
    POST /quotas  {"quota": {"cpu": 64, ...}, "project": "<id>"}   set limits (admins)
    GET  /usages                      the caller's usage; system admins: the whole cloud
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from core.api.deps import CredentialDep, SessionDep
from core.errors import InputParameterError
from core.keystone.policy import allowed, enforce
from core.region import quotas
from core.region.common import begin_write, json_response, unwrap
from core.region.models import Disk, Host, IpAllocation, Quota, Server, Storage

router = APIRouter()


def _project(request: Request, cred: Any, body: dict[str, Any] | None = None) -> tuple[str, str]:
    want = (body or {}).get("project") or (body or {}).get("project_id") or request.query_params.get("project") \
        or request.query_params.get("project_id")
    if want and want != cred.project_id:
        enforce(cred, "compute:quotas:manage")
        return str(want), str((body or {}).get("domain_id") or request.query_params.get("domain_id") or "default")
    if not cred.project_id:
        raise InputParameterError("project: required with a token that is not project-scoped")
    return str(cred.project_id), cred.project_domain_id or "default"


@router.get("/quotas")
def get_quota(request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    enforce(cred, "compute:quotas:get")
    tenant, domain = _project(request, cred)
    row = session.get(Quota, tenant)
    if row is None:
        out = {"tenant_id": tenant, "domain_id": domain, **quotas.DEFAULTS,
               **{f"usage.{k}": 0 for k in quotas.KEYS}}
    else:
        out = quotas.to_dict(row)
    return json_response({"quotas": [out], "quota": out})


@router.get("/quotas/projects")
def list_quotas(session: SessionDep, cred: CredentialDep) -> Response:
    enforce(cred, "compute:quotas:manage")
    rows = session.scalars(select(Quota).order_by(Quota.tenant_id).limit(2048))
    items = [quotas.to_dict(r) for r in rows]
    return json_response({"quotas": items, "total": len(items)})


@router.post("/quotas")
def set_quota(request: Request, session: SessionDep, cred: CredentialDep, body: Any = Body(default=None)) -> Response:
    enforce(cred, "compute:quotas:manage")
    data = unwrap(body, "quota")
    tenant, domain = _project(request, cred, unwrap(body, ""))
    begin_write(session)
    limits = {k: v for k, v in data.items() if k in quotas.KEYS}
    unknown = [k for k in data if k not in quotas.KEYS and k not in ("project", "project_id", "domain_id")]
    if unknown:
        raise InputParameterError(f"{unknown[0]}: not a quota (known: {', '.join(quotas.KEYS)})")
    row = quotas.set_limits(session, tenant, domain, limits)
    from core.audit import record

    record(session, cred, service="compute", action="set-quota", obj_type="quota", obj_id=tenant,
           notes=", ".join(f"{k}={v}" for k, v in limits.items()))
    session.flush()
    out = quotas.to_dict(row)
    session.commit()
    return json_response({"quota": out})


@router.get("/usages")
def usages(request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    enforce(cred, "compute:usages:get")
    whole = cred.scope == "system" or (allowed(cred, "compute:quotas:manage")
                                       and request.query_params.get("scope") == "system")

    def count(model: Any, *where: Any) -> int:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def total(col: Any, *where: Any) -> int:
        return int(session.scalar(select(func.coalesce(func.sum(col), 0)).where(*where)) or 0)

    own = () if whole else (Server.tenant_id == cred.project_id,)
    own_d = () if whole else (Disk.tenant_id == cred.project_id,)
    out: dict[str, Any] = {
        "servers": count(Server, *own), "running_servers": count(Server, Server.status == "running", *own),
        "cpu": total(Server.vcpu_count, *own), "memory": total(Server.vmem_size, *own),
        "disks": count(Disk, *own_d), "storage": total(Disk.disk_size, *own_d),
    }
    if whole:
        out.update({"hosts": count(Host), "enabled_hosts": count(Host, Host.enabled.is_(True)),
                    "online_hosts": count(Host, Host.host_status == "online"),
                    "host_cpu": total(Host.cpu_count), "host_memory": total(Host.mem_size),
                    "storages": count(Storage), "storage_capacity": total(Storage.capacity),
                    "ips": count(IpAllocation)})
    return json_response({"usage": out})
