"""``/v3/policies``: Keystone's opaque policy blobs (stored for clients; our rules are code, see
``ocadm policy dump``)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from core.api.deps import CredentialDep, SessionDep
from core.api.listing import ListDep
from core.errors import InputParameterError, ResourceNotFoundError
from core.keystone.models import Policy
from core.keystone.policy import enforce
from core.keystone.routes._common import Body, audited, keystone_page, link, list_reply

router = APIRouter()
MAX_BLOB = 256 * 1024


class PolicyFields(Body):
    type: str | None = None
    blob: str | None = None


class PolicyCreate(PolicyFields):
    type: str
    blob: str


class PolicyCreateBody(Body):
    policy: PolicyCreate


class PolicyUpdateBody(Body):
    policy: PolicyFields


def policy_dict(p: Policy, request: Request) -> dict[str, Any]:
    return {"id": p.id, "type": p.type, "blob": p.blob, "links": {"self": link(request, f"/policies/{p.id}")}}


def _check(b: PolicyFields) -> None:
    if b.blob is not None and len(b.blob) > MAX_BLOB:
        raise InputParameterError(f"policy blob is larger than {MAX_BLOB} bytes")
    if b.type is not None and not b.type.strip():
        raise InputParameterError("policy type must not be empty")


def _get(session: SessionDep, ref: str) -> Policy:
    p = session.get(Policy, ref)
    if p is None:
        raise ResourceNotFoundError(f"Could not find policy: {ref}.")
    return p


@router.post("/policies", status_code=201)
def create_policy(request: Request, session: SessionDep, cred: CredentialDep, body: PolicyCreateBody
                  ) -> dict[str, Any]:
    b = body.policy
    with audited(session, cred, "create", "policy", obj_name=b.type) as a:
        enforce(cred, "identity:policies:create")
        _check(b)
        p = Policy(type=b.type, blob=b.blob)
        session.add(p)
        session.flush()
        a.obj_id = p.id
    return {"policy": policy_dict(p, request)}


@router.get("/policies")
def list_policies(request: Request, session: SessionDep, cred: CredentialDep, q: ListDep) -> dict[str, Any]:
    enforce(cred, "identity:policies:list")
    stmt = select(Policy)
    if q.get("type"):
        stmt = stmt.where(Policy.type == q.get("type"))
    page = keystone_page(session, stmt, Policy, q, order_by="created_at")
    return list_reply(request, "policies", [policy_dict(p, request) for p in page.rows], page)


@router.get("/policies/{ref}")
def get_policy(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:policies:get")
    return {"policy": policy_dict(_get(session, ref), request)}


@router.patch("/policies/{ref}")
def update_policy(ref: str, request: Request, session: SessionDep, cred: CredentialDep, body: PolicyUpdateBody
                  ) -> dict[str, Any]:
    b = body.policy
    with audited(session, cred, "update", "policy", obj_id=ref):
        enforce(cred, "identity:policies:update")
        p = _get(session, ref)
        _check(b)
        if b.type is not None:
            p.type = b.type
        if b.blob is not None:
            p.blob = b.blob
    session.refresh(p)
    return {"policy": policy_dict(p, request)}


@router.delete("/policies/{ref}", status_code=204)
def delete_policy(ref: str, session: SessionDep, cred: CredentialDep) -> Response:
    with audited(session, cred, "delete", "policy", obj_id=ref):
        enforce(cred, "identity:policies:delete")
        session.delete(_get(session, ref))
    return Response(status_code=204)
