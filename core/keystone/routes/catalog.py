"""The catalog's resources: ``/v3/services``, ``/v3/endpoints`` (with service name/type), ``/v3/regions``."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import Select, func, select

from core.api.deps import CredentialDep, SessionDep
from core.api.inputs import check_display_name
from core.api.listing import ListQuery
from core.db.base import new_hex_id
from core.errors import DuplicateNameError, InputParameterError, NotEmptyError
from core.keystone.catalog import INTERFACES
from core.keystone.models import Endpoint, Region, Service
from core.keystone.policy import enforce
from core.keystone.routes._common import Body, audited
from core.keystone.routes._crud import Kind
from core.keystone.views import endpoint_view, region_view, service_view

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


SERVICES = Kind(Service, "service", "services", service_view, filters=("type", "name"), order_by="type",
                scoped=False)


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
    with SERVICES.creating(session, cred, b.name or b.type) as a:
        if not b.type.strip():
            raise InputParameterError("service type must not be empty")
        _unique_service(session, b.type, b.name or "")
        s = SERVICES.added(session, a, Service(type=b.type.strip(), name=(b.name or "").strip(),
                                               description=b.description or "",
                                               enabled=True if b.enabled is None else b.enabled))
    return SERVICES.one(s, request)


SERVICES.mount_reads(router, "/services")


@router.patch("/services/{ref}")
def update_service(ref: str, request: Request, session: SessionDep, cred: CredentialDep, body: ServiceUpdateBody
                   ) -> dict[str, Any]:
    b = body.service
    with SERVICES.changing(session, cred, "update", ref) as (s, _):
        new_type, new_name = b.type or s.type, s.name if b.name is None else b.name
        if (new_type, new_name) != (s.type, s.name):
            _unique_service(session, new_type, new_name, exclude=s.id)
        s.type, s.name = new_type, new_name
        if b.description is not None:
            s.description = b.description
        if b.enabled is not None:
            s.enabled = b.enabled
    return SERVICES.refreshed(session, s, request)


SERVICES.mount_delete(router, "/services")  # its endpoints go with it (ON DELETE CASCADE)


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


ENDPOINTS = Kind(Endpoint, "endpoint", "endpoints", endpoint_view, filters=("interface", "service_id", "region_id"),
                 bool_filters=("enabled",), order_by="url", scoped=False, label="url")


def _check_endpoint(session: SessionDep, interface: str | None, url: str | None, region_id: str | None) -> None:
    if interface is not None and interface not in INTERFACES:
        raise InputParameterError(f"interface must be one of {', '.join(INTERFACES)}")
    if url is not None and not url.startswith(("http://", "https://")):
        raise InputParameterError("url must be an http:// or https:// URL")
    if region_id and session.get(Region, region_id) is None:
        raise InputParameterError(f"region {region_id} does not exist; create it first")


@router.post("/endpoints", status_code=201)
def create_endpoint(request: Request, session: SessionDep, cred: CredentialDep, body: EndpointCreateBody
                    ) -> dict[str, Any]:
    b = body.endpoint
    with ENDPOINTS.creating(session, cred, b.url) as a:
        svc = SERVICES.find(session, cred, b.service_id)
        region_id = b.region_id or b.region or ""
        _check_endpoint(session, b.interface, b.url, region_id)
        e = ENDPOINTS.added(session, a, Endpoint(service_id=svc.id, interface=b.interface, url=b.url,
                                                 region_id=region_id,
                                                 enabled=True if b.enabled is None else b.enabled))
    return ENDPOINTS.one(e, request)


def _endpoints_of(q: ListQuery) -> Select[Any]:
    stmt = select(Endpoint)
    if q.get("region"):  # Keystone's v2-era name of region_id
        stmt = stmt.where(Endpoint.region_id == q.get("region"))
    return stmt


ENDPOINTS.mount_list(router, "/endpoints", _endpoints_of)
ENDPOINTS.mount_show(router, "/endpoints")


@router.patch("/endpoints/{ref}")
def update_endpoint(ref: str, request: Request, session: SessionDep, cred: CredentialDep, body: EndpointUpdateBody
                    ) -> dict[str, Any]:
    b = body.endpoint
    with ENDPOINTS.changing(session, cred, "update", ref) as (e, _):
        region_id = b.region_id if b.region_id is not None else b.region
        _check_endpoint(session, b.interface, b.url, region_id)
        if b.service_id is not None:
            e.service_id = SERVICES.find(session, cred, b.service_id).id
        if b.interface is not None:
            e.interface = b.interface
        if b.url is not None:
            e.url = b.url
        if region_id is not None:
            e.region_id = region_id
        if b.enabled is not None:
            e.enabled = b.enabled
    return ENDPOINTS.refreshed(session, e, request)


ENDPOINTS.mount_delete(router, "/endpoints")


# ---- regions -----------------------------------------------------------------------------------
class RegionFields(Body):
    id: str | None = None
    description: str | None = None
    parent_region_id: str | None = None


class RegionBody(Body):
    region: RegionFields


REGIONS = Kind(Region, "region", "regions", region_view, filters=("parent_region_id",), order_by="id", scoped=False,
               label="id")


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
    return REGIONS.one(r, request)


@router.post("/regions", status_code=201)
def create_region(request: Request, session: SessionDep, cred: CredentialDep, body: RegionBody) -> dict[str, Any]:
    return _create_region(body.region.id or new_hex_id(), request, session, cred, body.region)


@router.put("/regions/{rid}", status_code=201)
def put_region(rid: str, request: Request, session: SessionDep, cred: CredentialDep, body: RegionBody
               ) -> dict[str, Any]:
    if body.region.id and body.region.id != rid:
        raise InputParameterError("the region id in the body differs from the one in the path")
    return _create_region(rid, request, session, cred, body.region)


REGIONS.mount_list(router, "/regions")


@router.get("/regions/{rid}")
def get_region(rid: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    return REGIONS.show(request, session, cred, rid)


@router.patch("/regions/{rid}")
def update_region(rid: str, request: Request, session: SessionDep, cred: CredentialDep, body: RegionBody
                  ) -> dict[str, Any]:
    b = body.region
    with REGIONS.changing(session, cred, "update", rid) as (r, _):
        if b.id is not None and b.id != r.id:
            raise InputParameterError("a region's id is immutable")
        if "parent_region_id" in b.model_fields_set:
            _check_parent(session, r.id, b.parent_region_id)
            r.parent_region_id = b.parent_region_id or None
        if b.description is not None:
            r.description = b.description
    return REGIONS.one(r, request)


@router.delete("/regions/{rid}", status_code=204)
def delete_region(rid: str, session: SessionDep, cred: CredentialDep) -> Response:
    with REGIONS.changing(session, cred, "delete", rid) as (r, _):
        for model, col, what in ((Region, Region.parent_region_id, "child regions"),
                                 (Endpoint, Endpoint.region_id, "endpoints")):
            n = session.scalar(select(func.count()).select_from(model).where(col == r.id)) or 0
            if n:
                raise NotEmptyError(f"region {r.id} still has {n} {what}")
        session.delete(r)
    return Response(status_code=204)
