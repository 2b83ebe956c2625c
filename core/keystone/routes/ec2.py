"""Keystone's OS-EC2 extension (``/v3/users/<user>/credentials/OS-EC2``): EC2 access/secret pairs as
S3/EC2-style clients and Tempest manage them. They are the ``ec2`` rows of ``/v3/credentials``
(same table, same encryption, id = sha256(access)), addressed here by their access key."""
from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import Field, ValidationError
from sqlalchemy import select

from core.api.deps import CredentialDep, SessionDep
from core.errors import ForbiddenError, InputParameterError, ResourceNotFoundError, UnauthorizedError
from core.keystone.assignments import projects_of
from core.keystone.ec2sig import verify
from core.keystone.models import UserCredential
from core.keystone.policy import enforce
from core.keystone.routes._common import Body, audited, link
from core.keystone.routes.credentials import cipher, existing_project, owned_user, store

router = APIRouter()


class Ec2Create(Body):
    tenant_id: str | None = None
    project_id: str | None = None


def _ec2_dict(c: UserCredential, request: Request) -> dict[str, Any]:
    data = json.loads(cipher(request).decrypt(c.encrypted_blob))
    return {"user_id": c.user_id, "tenant_id": c.project_id, "access": data["access"], "secret": data["secret"],
            "trust_id": data.get("trust_id"),
            "links": {"self": link(request, f"/users/{c.user_id}/credentials/OS-EC2/{data['access']}")}}


def _one(session: SessionDep, user_id: str, access: str) -> UserCredential:
    c = session.get(UserCredential, hashlib.sha256(access.encode()).hexdigest())
    if c is None or c.type != "ec2" or c.user_id != user_id:
        raise ResourceNotFoundError(f"Could not find credential: {access}.")
    return c


@router.post("/users/{user_id}/credentials/OS-EC2", status_code=201)
def create_ec2(user_id: str, request: Request, session: SessionDep, cred: CredentialDep, body: Ec2Create
               ) -> dict[str, Any]:
    with audited(session, cred, "create", "credential", obj_name="ec2") as a:
        enforce(cred, "identity:credentials:create")
        user = owned_user(session, cred, user_id)
        project_id = body.tenant_id or body.project_id
        if not project_id:
            raise InputParameterError("tenant_id: required (the project the EC2 credential acts in)")
        existing_project(session, project_id)
        if project_id not in {p.id for p in projects_of(session, user.id)}:
            raise ForbiddenError(f"user {user.name} has no role on project {project_id}")
        c = store(session, request, a, user, project_id, "ec2", None)
    return {"credential": _ec2_dict(c, request)}


@router.get("/users/{user_id}/credentials/OS-EC2")
def list_ec2(user_id: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:credentials:list")
    owned_user(session, cred, user_id)
    rows = session.scalars(select(UserCredential).where(UserCredential.user_id == user_id,
                                                        UserCredential.type == "ec2")
                           .order_by(UserCredential.created_at))
    return {"credentials": [_ec2_dict(c, request) for c in rows],
            "links": {"self": link(request, f"/users/{user_id}/credentials/OS-EC2"), "previous": None, "next": None}}


@router.get("/users/{user_id}/credentials/OS-EC2/{access}")
def get_ec2(user_id: str, access: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:credentials:get")
    owned_user(session, cred, user_id)
    return {"credential": _ec2_dict(_one(session, user_id, access), request)}


@router.delete("/users/{user_id}/credentials/OS-EC2/{access}", status_code=204)
def delete_ec2(user_id: str, access: str, session: SessionDep, cred: CredentialDep) -> Response:
    with audited(session, cred, "delete", "credential", obj_name="ec2") as a:
        enforce(cred, "identity:credentials:delete")
        owned_user(session, cred, user_id)
        c = _one(session, user_id, access)
        a.obj_id = c.id
        session.delete(c)
    return Response(status_code=204)


# ---- POST /v3/ec2tokens ------------------------------------------------------------------------
class Ec2Request(Body):
    """What an EC2/S3 front end saw of a signed request (Keystone's ec2tokens ``credentials``)."""

    access: str = Field(min_length=1, max_length=255)
    signature: str | None = Field(default=None, max_length=1024)
    host: str = Field(default="", max_length=1024)
    verb: str = Field(default="", max_length=16)
    path: str = Field(default="", max_length=8192)
    params: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body_hash: str = Field(default="", max_length=128)


def ec2_login(session: SessionDep, request: Request, body: Any) -> tuple[str, str]:
    """(user id, project id) of the EC2 credential whose secret signed the described request."""
    creds = body.get("credentials") or body.get("ec2Credentials") if isinstance(body, dict) else None
    if not isinstance(creds, dict):
        raise InputParameterError("credentials is required: the access key, signature, verb, host, path, params, "
                                  "headers and body_hash of the signed request")
    try:
        req = Ec2Request.model_validate(creds)
    except ValidationError as e:
        first = e.errors()[0]
        raise InputParameterError(f"credentials.{'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from None
    c = session.get(UserCredential, hashlib.sha256(req.access.encode()).hexdigest())
    if c is None or c.type != "ec2":
        raise UnauthorizedError("EC2 access key not found.")
    data = json.loads(cipher(request).decrypt(c.encrypted_blob))
    verify(data["secret"], {**req.model_dump(), "params": {k: v for k, v in req.params.items() if v is not None}})
    if not c.project_id:
        raise UnauthorizedError("this EC2 credential names no project")
    return c.user_id, c.project_id
