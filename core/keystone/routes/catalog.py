"""The catalog's resources: ``/v3/services``, ``/v3/endpoints`` (with service name/type), ``/v3/regions``."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select

from core.api.deps import CredentialDep, SessionDep
from core.api.inputs import check_display_name
from core.api.listing import ListDep
from core.db.base import new_hex_id
from core.errors import (
    ConflictError,
    DuplicateNameError,
    InputParameterError,
    NotEmptyError,
    ResourceNotFoundError,
)
from core.keystone.catalog import INTERFACES
from core.keystone.models import Endpoint, Region, Service
from core.keystone.policy import enforce
from core.keystone.routes._common import Body, audited, bool_param, keystone_page, link, list_reply

router = APIRouter()


# ---- services ----------------------------------------------------------------------------------
class ServiceFields(Body):
    type: str | None = None
    name: str | None = None
    description: str | None = None
    enabled: bool | None = None


class ServiceCreate(ServiceFields):
    type: str


class ServiceCreateBody(Body):
    service: ServiceCreate


class ServiceUpdateBody(Body):
    service: ServiceFields


def service_dict(s: Service, request: Request) -> dict[str, Any]:
    return {"id": s.id, "type": s.type, "name": s.name, "description": s.description, "enabled": s.enabled,
            "links": {"self": link(request, f"/services/{s.id}")}}


def _service(session: SessionDep, ref: str) -> Service:
    s = session.get(Service, ref)
    if s is None:
        rows = list(session.scalars(select(Service).where(Service.name == ref).limit(2)))
        if len(rows) > 1:
            raise ConflictError(f"more than one service is named {ref!r}: use its id")
        s = rows[0] if rows else None
    if s is None:
        raise ResourceNotFoundError(f"Could not find service: {ref}.")
    return s


def _unique_service(session: SessionDep, stype: str, name: str, exclude: str | None = None) -> None:
    check_display_name(stype.strip() or "-", "service type")
    if name:
        check_display_name(name.strip() or "-", "service name")
    stmt = select(Service.id).where(Service.type == stype, Service.name == name)
    if exclude:
        stmt = stmt.where(Service.id != exclude)
    if name and session.scalar(stmt.limit(1)):
        raise DuplicateNameError(f"Duplicate entry: a {stype} service named {name!r} already exists.")


@router.post("/services", status_code=201)
def create_service(request: Request, session: SessionDep, cred: CredentialDep, body: ServiceCreateBody
                   ) -> dict[str, Any]:
    b = body.service
    with audited(session, cred, "create", "service", obj_name=b.name or b.type) as a:
        enforce(cred, "identity:services:create")
        if not b.type.strip():
            raise InputParameterError("service type must not be empty")
        _unique_service(session, b.type, b.name or "")
        s = Service(type=b.type.strip(), name=(b.name or "").strip(), description=b.description or "",
                    enabled=True if b.enabled is None else b.enabled)
        session.add(s)
        session.flush()
        a.set(s)
    return {"service": service_dict(s, request)}


@router.get("/services")
def list_services(request: Request, session: SessionDep, cred: CredentialDep, q: ListDep) -> dict[str, Any]:
    enforce(cred, "identity:services:list")
    stmt = select(Service)
    for key, col in (("type", Service.type), ("name", Service.name)):
        if q.get(key):
            stmt = stmt.where(col == q.get(key))
    page = keystone_page(session, stmt, Service, q, order_by="type")
    return list_reply(request, "services", [service_dict(s, request) for s in page.rows], page)


@router.get("/services/{ref}")
def get_service(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:services:get")
    return {"service": service_dict(_service(session, ref), request)}


@router.patch("/services/{ref}")
def update_service(ref: str, request: Request, session: SessionDep, cred: CredentialDep, body: ServiceUpdateBody
                   ) -> dict[str, Any]:
    b = body.service
    with audited(session, cred, "update", "service", obj_id=ref) as a:
        enforce(cred, "identity:services:update")
        s = _service(session, ref)
        a.set(s)
        new_type, new_name = b.type or s.type, s.name if b.name is None else b.name
        if (new_type, new_name) != (s.type, s.name):
            _unique_service(session, new_type, new_name, exclude=s.id)
        s.type, s.name = new_type, new_name
        if b.description is not None:
            s.description = b.description
        if b.enabled is not None:
            s.enabled = b.enabled
    session.refresh(s)
    return {"service": service_dict(s, request)}


@router.delete("/services/{ref}", status_code=204)
def delete_service(ref: str, session: SessionDep, cred: CredentialDep) -> Response:
    with audited(session, cred, "delete", "service", obj_id=ref) as a:
        enforce(cred, "identity:services:delete")
        s = _service(session, ref)
        a.set(s)
        session.delete(s)  # its endpoints go with it (ON DELETE CASCADE)
    return Response(status_code=204)


# ---- endpoints ---------------------------------------------------------------------------------
class EndpointFields(Body):
    service_id: str | None = None
    interface: str | None = None
    url: str | None = None
    region_id: str | None = None
    region: str | None = None  # Keystone v2-era alias still sent by some clients
    enabled: bool | None = None


class EndpointCreate(EndpointFields):
    service_id: str
    interface: str
    url: str


class EndpointCreateBody(Body):
    endpoint: EndpointCreate


class EndpointUpdateBody(Body):
    endpoint: EndpointFields


def endpoint_dict(e: Endpoint, svc: Service | None, request: Request) -> dict[str, Any]:
    return {"id": e.id, "interface": e.interface, "region": e.region_id or None, "region_id": e.region_id or None,
            "url": e.url, "enabled": e.enabled, "service_id": e.service_id,
            "service_name": svc.name if svc else "", "service_type": svc.type if svc else "",
            "links": {"self": link(request, f"/endpoints/{e.id}")}}


def _check_endpoint(session: SessionDep, interface: str | None, url: str | None, region_id: str | None) -> None:
    if interface is not None and interface not in INTERFACES:
        raise InputParameterError(f"interface must be one of {', '.join(INTERFACES)}")
    if url is not None and not url.startswith(("http://", "https://")):
        raise InputParameterError("url must be an http:// or https:// URL")
    if region_id and session.get(Region, region_id) is None:
        raise InputParameterError(f"region {region_id} does not exist; create it first")


def _endpoint(session: SessionDep, ref: str) -> Endpoint:
    e = session.get(Endpoint, ref)
    if e is None:
        raise ResourceNotFoundError(f"Could not find endpoint: {ref}.")
    return e


@router.post("/endpoints", status_code=201)
def create_endpoint(request: Request, session: SessionDep, cred: CredentialDep, body: EndpointCreateBody
                    ) -> dict[str, Any]:
    b = body.endpoint
    with audited(session, cred, "create", "endpoint", obj_name=b.url) as a:
        enforce(cred, "identity:endpoints:create")
        svc = _service(session, b.service_id)
        region_id = b.region_id or b.region or ""
        _check_endpoint(session, b.interface, b.url, region_id)
        e = Endpoint(service_id=svc.id, interface=b.interface, url=b.url, region_id=region_id,
                     enabled=True if b.enabled is None else b.enabled)
        session.add(e)
        session.flush()
        a.obj_id = e.id
    return {"endpoint": endpoint_dict(e, svc, request)}


@router.get("/endpoints")
def list_endpoints(request: Request, session: SessionDep, cred: CredentialDep, q: ListDep) -> dict[str, Any]:
    enforce(cred, "identity:endpoints:list")
    stmt = select(Endpoint)
    for key, col in (("interface", Endpoint.interface), ("service_id", Endpoint.service_id),
                     ("region_id", Endpoint.region_id), ("region", Endpoint.region_id)):
        if q.get(key):
            stmt = stmt.where(col == q.get(key))
    if bool_param(q, "enabled") is not None:
        stmt = stmt.where(Endpoint.enabled.is_(bool_param(q, "enabled")))
    page = keystone_page(session, stmt, Endpoint, q, order_by="url")
    services = {s.id: s for s in session.scalars(select(Service))}
    items = [endpoint_dict(e, services.get(e.service_id), request) for e in page.rows]
    return list_reply(request, "endpoints", items, page)


@router.get("/endpoints/{ref}")
def get_endpoint(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:endpoints:get")
    e = _endpoint(session, ref)
    return {"endpoint": endpoint_dict(e, session.get(Service, e.service_id), request)}


@router.patch("/endpoints/{ref}")
def update_endpoint(ref: str, request: Request, session: SessionDep, cred: CredentialDep, body: EndpointUpdateBody
                    ) -> dict[str, Any]:
    b = body.endpoint
    with audited(session, cred, "update", "endpoint", obj_id=ref) as a:
        enforce(cred, "identity:endpoints:update")
        e = _endpoint(session, ref)
        a.obj_name = e.url
        region_id = b.region_id if b.region_id is not None else b.region
        _check_endpoint(session, b.interface, b.url, region_id)
        if b.service_id is not None:
            e.service_id = _service(session, b.service_id).id
        if b.interface is not None:
            e.interface = b.interface
        if b.url is not None:
            e.url = b.url
        if region_id is not None:
            e.region_id = region_id
        if b.enabled is not None:
            e.enabled = b.enabled
    session.refresh(e)
    return {"endpoint": endpoint_dict(e, session.get(Service, e.service_id), request)}


@router.delete("/endpoints/{ref}", status_code=204)
def delete_endpoint(ref: str, session: SessionDep, cred: CredentialDep) -> Response:
    with audited(session, cred, "delete", "endpoint", obj_id=ref) as a:
        enforce(cred, "identity:endpoints:delete")
        e = _endpoint(session, ref)
        a.obj_name = e.url
        session.delete(e)
    return Response(status_code=204)


# ---- regions -----------------------------------------------------------------------------------
class RegionFields(Body):
    id: str | None = None
    description: str | None = None
    parent_region_id: str | None = None


class RegionBody(Body):
    region: RegionFields


def region_dict(r: Region, request: Request) -> dict[str, Any]:
    return {"id": r.id, "description": r.description, "parent_region_id": r.parent_region_id,
            "links": {"self": link(request, f"/regions/{r.id}")}}


def _region(session: SessionDep, ref: str) -> Region:
    r = session.get(Region, ref)
    if r is None:
        raise ResourceNotFoundError(f"Could not find region: {ref}.")
    return r


def _check_parent(session: SessionDep, rid: str, parent: str | None) -> None:
    seen = {rid}
    while parent:
        if parent in seen:
            raise InputParameterError("parent_region_id would make a cycle")
        row = session.get(Region, parent)
        if row is None:
            raise InputParameterError(f"parent region {parent} does not exist")
        seen.add(parent)
        parent = row.parent_region_id


def _create_region(rid: str, request: Request, session: SessionDep, cred: CredentialDep, b: RegionFields
                   ) -> dict[str, Any]:
    with audited(session, cred, "create", "region", obj_id=rid, obj_name=rid):
        enforce(cred, "identity:regions:create")
        if not rid or len(rid) > 255 or "/" in rid:
            raise InputParameterError("region id must be 1-255 characters without '/'")
        if session.get(Region, rid) is not None:
            raise DuplicateNameError(f"Duplicate ID, region {rid} already exists.")
        _check_parent(session, rid, b.parent_region_id)
        r = Region(id=rid, description=b.description or "", parent_region_id=b.parent_region_id or None)
        session.add(r)
    return {"region": region_dict(r, request)}


@router.post("/regions", status_code=201)
def create_region(request: Request, session: SessionDep, cred: CredentialDep, body: RegionBody) -> dict[str, Any]:
    return _create_region(body.region.id or new_hex_id(), request, session, cred, body.region)


@router.put("/regions/{rid}", status_code=201)
def put_region(rid: str, request: Request, session: SessionDep, cred: CredentialDep, body: RegionBody
               ) -> dict[str, Any]:
    if body.region.id and body.region.id != rid:
        raise InputParameterError("the region id in the body differs from the one in the path")
    return _create_region(rid, request, session, cred, body.region)


@router.get("/regions")
def list_regions(request: Request, session: SessionDep, cred: CredentialDep, q: ListDep) -> dict[str, Any]:
    enforce(cred, "identity:regions:list")
    stmt = select(Region)
    if q.get("parent_region_id"):
        stmt = stmt.where(Region.parent_region_id == q.get("parent_region_id"))
    page = keystone_page(session, stmt, Region, q, order_by="id")
    return list_reply(request, "regions", [region_dict(r, request) for r in page.rows], page)


@router.get("/regions/{rid}")
def get_region(rid: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:regions:get")
    return {"region": region_dict(_region(session, rid), request)}


@router.patch("/regions/{rid}")
def update_region(rid: str, request: Request, session: SessionDep, cred: CredentialDep, body: RegionBody
                  ) -> dict[str, Any]:
    b = body.region
    with audited(session, cred, "update", "region", obj_id=rid, obj_name=rid):
        enforce(cred, "identity:regions:update")
        r = _region(session, rid)
        if b.id is not None and b.id != r.id:
            raise InputParameterError("a region's id is immutable")
        if "parent_region_id" in b.model_fields_set:
            _check_parent(session, r.id, b.parent_region_id)
            r.parent_region_id = b.parent_region_id or None
        if b.description is not None:
            r.description = b.description
    return {"region": region_dict(r, request)}


@router.delete("/regions/{rid}", status_code=204)
def delete_region(rid: str, session: SessionDep, cred: CredentialDep) -> Response:
    with audited(session, cred, "delete", "region", obj_id=rid, obj_name=rid):
        enforce(cred, "identity:regions:delete")
        r = _region(session, rid)
        for model, col, what in ((Region, Region.parent_region_id, "child regions"),
                                 (Endpoint, Endpoint.region_id, "endpoints")):
            n = session.scalar(select(func.count()).select_from(model).where(col == r.id)) or 0
            if n:
                raise NotEmptyError(f"region {r.id} still has {n} {what}")
        session.delete(r)
    return Response(status_code=204)
