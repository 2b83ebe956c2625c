"""Quotas and usages, on Cloudpods' quota paths.

    GET  /quotas                      the caller's project (``?project=<id>`` for admins)
    GET  /quotas/projects             every project with a quota row (admins; ``?domain_id=``)
    GET  /quotas/projects/<project>   one project (id or name); also GET /quotas/<project>
    POST /quotas  {"quotas": {"cpu": 64, ...}, "project": "<id>"}   set limits (admins)
    POST /quotas/projects/<project>   (and POST /quotas/<project>) the same for a named project
    GET  /quotas/domains[/<domain>]   per domain: its caps, else the sum of its projects' limits; usage
    POST /quotas/domains/<domain>  {"quotas": {"cpu": 512, ...}}  a domain's own caps (system admins)
    GET  /usages                      the caller's usage; system admins: the whole cloud

Limits are per project (one row each, reserved by one UPDATE). A domain may also have caps of its
own, as Cloudpods' domain-level quota: its projects' usage together stays within them (checked at
each reservation, see quotas.reserve); a key without a cap shows the sum of its projects' limits.
Replies carry ``quotas`` as a list, as Cloudpods' quota handler sends, plus ``quota`` (the one row)
for our climc.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from core.api.deps import CredentialDep, SessionDep
from core.errors import InputParameterError, ResourceNotFoundError, UnsupportedOperationError
from core.keystone.policy import allowed, enforce
from core.region import quotas
from core.region.common import begin_write, json_response, unwrap
from core.region.models import Disk, Host, IpAllocation, Quota, Server, Storage

router = APIRouter()


def _project(request: Request, session: Any, cred: Any, body: dict[str, Any] | None = None) -> tuple[str, str]:
    want = (body or {}).get("project") or (body or {}).get("project_id") or request.query_params.get("project") \
        or request.query_params.get("project_id")
    if want and want != cred.project_id:  # id or name of a project that exists (not a new row for a typo)
        return _named_project(session, cred, str(want))
    if not cred.project_id:
        raise InputParameterError("project: required with a token that is not project-scoped")
    return str(cred.project_id), cred.project_domain_id or "default"


@router.get("/quotas")
def get_quota(request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    enforce(cred, "compute:quotas:get")
    tenant, domain = _project(request, session, cred)
    return _show(session, tenant, domain)


@router.get("/quotas/projects")
def list_quotas(request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    enforce(cred, "compute:quotas:manage")
    stmt = select(Quota).order_by(Quota.tenant_id).limit(2048)
    dom = request.query_params.get("domain_id") or request.query_params.get("project_domain")
    if dom:
        stmt = stmt.where(Quota.domain_id == _domain(session, dom).id)
    rows = list(session.scalars(stmt))
    names = _project_names(session, [r.tenant_id for r in rows])
    items = [{**quotas.to_dict(r), "tenant": names.get(r.tenant_id, "")} for r in rows]
    return json_response({"quotas": items, "total": len(items)})


@router.get("/quotas/domains")
def list_domain_quotas(session: SessionDep, cred: CredentialDep) -> Response:
    enforce(cred, "compute:quotas:manage")
    from core.keystone.models import Domain

    items = [_domain_total(session, d) for d in session.scalars(select(Domain).order_by(Domain.name))]
    return json_response({"quotas": items, "total": len(items)})


@router.get("/quotas/domains/{domain}")
def get_domain_quota(domain: str, session: SessionDep, cred: CredentialDep) -> Response:
    enforce(cred, "compute:quotas:manage")
    out = _domain_total(session, _domain(session, domain))
    return json_response({"quotas": [out], "quota": out})


@router.post("/quotas/domains/{domain}")
def set_domain_quota(domain: str, session: SessionDep, cred: CredentialDep, body: Any = Body(default=None)
                     ) -> Response:
    enforce(cred, "compute:quotas:manage_domains")
    d = _domain(session, domain)
    data = unwrap(body, "quotas") if isinstance(body, dict) and isinstance(body.get("quotas"), dict) \
        else unwrap(body, "quota")
    action = data.get("action") or "update"
    if action not in ("update", "reset"):
        raise UnsupportedOperationError(f"action: {action!r} is not supported (update or reset)")
    unknown = [k for k in data if k not in quotas.KEYS and k not in _OWNER_KEYS + ("domain",)]
    if unknown:
        raise InputParameterError(f"{unknown[0]}: not a quota (known: {', '.join(quotas.KEYS)})")
    limits = {k: v for k, v in data.items() if k in quotas.KEYS}
    begin_write(session)
    quotas.set_domain_limits(session, d.id, limits, reset=action == "reset")
    from core.audit import record

    record(session, cred, service="compute", action="set-quota", obj_type="domain_quota", obj_id=d.id,
           obj_name=d.name, notes=action if action == "reset" else ", ".join(f"{k}={v}" for k, v in limits.items()))
    session.flush()
    out = _domain_total(session, d)
    session.commit()
    return json_response({"quotas": [out], "quota": out})


@router.get("/quotas/projects/{project}")
@router.get("/quotas/{project}")
def get_project_quota(project: str, session: SessionDep, cred: CredentialDep) -> Response:
    enforce(cred, "compute:quotas:get")
    tenant, domain = _named_project(session, cred, project)
    return _show(session, tenant, domain)


@router.post("/quotas/projects/{project}")
@router.post("/quotas/{project}")
def set_project_quota(project: str, request: Request, session: SessionDep, cred: CredentialDep,
                      body: Any = Body(default=None)) -> Response:
    enforce(cred, "compute:quotas:manage")
    return _set(request, session, cred, body, project)


_OWNER_KEYS = ("project", "project_id", "tenant", "tenant_id", "domain_id", "project_domain", "action")


def _named_project(session: Any, cred: Any, ref: str) -> tuple[str, str]:
    """A project by id or name; another project than the caller's needs the manage right."""
    from core.keystone.models import Project

    row = session.get(Project, ref) or session.scalar(select(Project).where(Project.name == ref).limit(1))
    if row is None or row.id != cred.project_id:
        enforce(cred, "compute:quotas:manage")  # before the 404: others learn nothing of names
    if row is None:
        raise ResourceNotFoundError(f"project {ref} not found")
    return str(row.id), str(row.domain_id)


def _domain(session: Any, ref: str) -> Any:
    from core.keystone.models import Domain

    row = session.get(Domain, ref) or session.scalar(select(Domain).where(Domain.name == ref).limit(1))
    if row is None:
        raise ResourceNotFoundError(f"domain {ref} not found")
    return row


def _project_names(session: Any, ids: list[str]) -> dict[str, str]:
    from core.keystone.models import Project

    if not ids:
        return {}
    return {i: n for i, n in session.execute(select(Project.id, Project.name).where(Project.id.in_(ids)))}


def _domain_total(session: Any, dom: Any) -> dict[str, Any]:
    """A domain's quota: its own cap per key where it has one, else the sum of its projects' (a
    project without a row has the defaults; any unlimited project makes the domain unlimited)."""
    from core.keystone.models import Project
    from core.region.models import DomainQuota

    out: dict[str, Any] = {"domain_id": dom.id, "project_domain": dom.name}
    pids = list(session.scalars(select(Project.id).where(Project.domain_id == dom.id)))
    rows = {r.tenant_id: r for r in session.scalars(select(Quota).where(Quota.domain_id == dom.id))}
    bare = sum(1 for p in pids if p not in rows)
    cap = session.get(DomainQuota, dom.id)
    for k in quotas.KEYS:
        limits = [getattr(r, k) for r in rows.values()] + [quotas.DEFAULTS[k]] * bare
        own = getattr(cap, k) if cap is not None else -1
        out[k] = own if own >= 0 else -1 if any(v < 0 for v in limits) else sum(limits)
        out[f"domain_limit.{k}"] = own
        out[f"usage.{k}"] = sum(getattr(r, f"used_{k}") for r in rows.values())
    out["projects"] = len(set(pids) | set(rows))
    return out


def _show(session: Any, tenant: str, domain: str) -> Response:
    row = session.get(Quota, tenant)
    if row is None:
        out = {"tenant_id": tenant, "domain_id": domain, **quotas.DEFAULTS,
               **{f"usage.{k}": 0 for k in quotas.KEYS}, "usage.eip": quotas.held_eips(session, tenant)}
    else:
        out = quotas.to_dict(row)
    return json_response({"quotas": [out], "quota": out})


@router.post("/quotas")
def set_quota(request: Request, session: SessionDep, cred: CredentialDep, body: Any = Body(default=None)) -> Response:
    enforce(cred, "compute:quotas:manage")
    return _set(request, session, cred, body, None)


def _set(request: Request, session: Any, cred: Any, body: Any, ref: str | None) -> Response:
    data = unwrap(body, "quotas") if isinstance(body, dict) and isinstance(body.get("quotas"), dict) \
        else unwrap(body, "quota")
    if ref is not None:
        tenant, domain = _named_project(session, cred, ref)
    else:
        tenant, domain = _project(request, session, cred, unwrap(body, ""))
    begin_write(session)
    action = data.get("action") or "update"
    if action not in ("update", "reset"):
        raise UnsupportedOperationError(f"action: {action!r} is not supported (update or reset)")
    limits = dict(quotas.DEFAULTS) if action == "reset" else {k: v for k, v in data.items() if k in quotas.KEYS}
    unknown = [k for k in data if k not in quotas.KEYS and k not in _OWNER_KEYS]
    if unknown:
        raise InputParameterError(f"{unknown[0]}: not a quota (known: {', '.join(quotas.KEYS)})")
    row = quotas.set_limits(session, tenant, domain, limits)
    from core.audit import record

    record(session, cred, service="compute", action="set-quota", obj_type="quota", obj_id=tenant,
           notes=", ".join(f"{k}={v}" for k, v in limits.items()))
    session.flush()
    out = quotas.to_dict(row)
    session.commit()
    return json_response({"quota": out, "quotas": [out]})


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
