"""``/v3/credentials``: EC2-style access/secret pairs (and other opaque blobs) for scripts.

The blob is encrypted at rest with the credential key repository (credkeys.py); it is returned to
its owner (and system readers), as Keystone does, and never written to the audit log. An EC2
credential's id is sha256(access), so an access key is unique and can be looked up by id.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.api.deps import CredentialDep, SessionDep
from core.api.listing import ListDep
from core.db.base import new_hex_id
from core.errors import DuplicateNameError, InputParameterError, ResourceNotFoundError
from core.keystone.credkeys import CredentialCipher, cipher_for
from core.keystone.models import Project, User, UserCredential
from core.keystone.policy import enforce
from core.keystone.routes._common import AuditInfo, Body, audited, keystone_page, link, list_reply, visible

router = APIRouter()


class CredentialFields(Body):
    type: str | None = None
    user_id: str | None = None
    project_id: str | None = None
    blob: str | None = None


class CredentialCreate(CredentialFields):
    type: str


class CredentialCreateBody(Body):
    credential: CredentialCreate


class CredentialUpdateBody(Body):
    credential: CredentialFields


def cipher(request: Request) -> CredentialCipher:
    c = getattr(request.app.state, "credential_cipher", None)
    if c is None:
        c = request.app.state.credential_cipher = cipher_for(request.app.state.settings.data_dir)
    return c


def credential_dict(c: UserCredential, request: Request) -> dict[str, Any]:
    return {"id": c.id, "user_id": c.user_id, "project_id": c.project_id, "type": c.type,
            "blob": cipher(request).decrypt(c.encrypted_blob), "links": {"self": link(request, f"/credentials/{c.id}")}}


def ec2_blob(blob: str | None) -> tuple[str, str]:
    """(blob to store, id) for an EC2 credential; generates the pair when no blob is given."""
    if blob is None:
        data = {"access": secrets.token_hex(16), "secret": secrets.token_hex(20)}
    else:
        try:
            data = json.loads(blob)
        except ValueError:
            raise InputParameterError("an ec2 credential's blob must be JSON with access and secret") from None
        if not isinstance(data, dict) or not isinstance(data.get("access"), str) or not data["access"] \
                or not isinstance(data.get("secret"), str) or not data["secret"]:
            raise InputParameterError("an ec2 credential's blob must be JSON with access and secret")
    return json.dumps(data), hashlib.sha256(data["access"].encode()).hexdigest()


def owned_user(session: SessionDep, cred: Credential, user_id: str) -> User:
    """Own credentials for everyone; another user's only for a system admin."""
    user = session.get(User, user_id)
    if user_id != cred.user_id:
        enforce(cred, "identity:credentials:manage_others")
    if user is None:
        raise ResourceNotFoundError(f"Could not find user: {user_id}.")
    return user


def existing_project(session: Session, project_id: str) -> None:
    if session.get(Project, project_id) is None:
        raise ResourceNotFoundError(f"Could not find project: {project_id}.")


def store(session: Session, request: Request, a: AuditInfo, user: User, project_id: str | None, type_: str,
          blob: str | None) -> UserCredential:
    """Encrypt and add one credential of ``user`` (both create routes: /v3/credentials and OS-EC2). An
    ec2 one's id is sha256(access), its pair generated when no blob is given; the audit names the row and
    its user, never the blob."""
    if type_ == "ec2":
        blob, cid = ec2_blob(blob)
    elif blob is None:
        raise InputParameterError("blob is required")
    else:
        cid = new_hex_id()
    if session.get(UserCredential, cid) is not None:
        raise DuplicateNameError("a credential with this access key already exists")
    c = UserCredential(id=cid, user_id=user.id, project_id=project_id, type=type_,
                       encrypted_blob=cipher(request).encrypt(blob))
    session.add(c)
    a.obj_id = cid
    a.notes = f"user {user.id}"
    return c


def _get(session: SessionDep, cred: Credential, ref: str) -> UserCredential:
    c = session.scalar(select(UserCredential).where(UserCredential.id == ref, visible(cred, UserCredential)))
    if c is None:
        raise ResourceNotFoundError(f"Could not find credential: {ref}.")
    return c


@router.post("/credentials", status_code=201)
def create_credential(request: Request, session: SessionDep, cred: CredentialDep, body: CredentialCreateBody
                      ) -> dict[str, Any]:
    b = body.credential
    with audited(session, cred, "create", "credential", obj_name=b.type) as a:
        enforce(cred, "identity:credentials:create")
        user = owned_user(session, cred, b.user_id or cred.user_id)
        project_id = b.project_id or (cred.project_id if b.type == "ec2" else None)
        if project_id:
            existing_project(session, project_id)
        elif b.type == "ec2":
            raise InputParameterError("an ec2 credential needs project_id (or a project-scoped token)")
        c = store(session, request, a, user, project_id, b.type, b.blob)
    return {"credential": credential_dict(c, request)}


@router.get("/credentials")
def list_credentials(request: Request, session: SessionDep, cred: CredentialDep, q: ListDep) -> dict[str, Any]:
    enforce(cred, "identity:credentials:list")
    stmt = select(UserCredential).where(visible(cred, UserCredential))
    for key, col in (("user_id", UserCredential.user_id), ("type", UserCredential.type),
                     ("project_id", UserCredential.project_id)):
        if q.get(key):
            stmt = stmt.where(col == q.get(key))
    page = keystone_page(session, stmt, UserCredential, q, order_by="created_at")
    return list_reply(request, "credentials", [credential_dict(c, request) for c in page.rows], page)


@router.get("/credentials/{ref}")
def get_credential(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:credentials:get")
    return {"credential": credential_dict(_get(session, cred, ref), request)}


@router.patch("/credentials/{ref}")
def update_credential(ref: str, request: Request, session: SessionDep, cred: CredentialDep,
                      body: CredentialUpdateBody) -> dict[str, Any]:
    b = body.credential
    with audited(session, cred, "update", "credential", obj_id=ref) as a:
        enforce(cred, "identity:credentials:update")
        c = _get(session, cred, ref)
        owned_user(session, cred, c.user_id)
        a.notes = ",".join(sorted(b.model_fields_set))
        if b.user_id is not None and b.user_id != c.user_id:
            raise InputParameterError("user_id is immutable: a credential cannot move to another user")
        if b.type is not None and b.type != c.type:
            raise InputParameterError("a credential's type is immutable")
        if b.project_id is not None:
            existing_project(session, b.project_id)
            c.project_id = b.project_id
        if b.blob is not None:
            if c.type == "ec2":
                blob, cid = ec2_blob(b.blob)
                if cid != c.id:
                    raise InputParameterError("an ec2 credential's access key is immutable; create a new one")
            else:
                blob = b.blob
            c.encrypted_blob = cipher(request).encrypt(blob)
    session.refresh(c)
    return {"credential": credential_dict(c, request)}


@router.delete("/credentials/{ref}", status_code=204)
def delete_credential(ref: str, session: SessionDep, cred: CredentialDep) -> Response:
    with audited(session, cred, "delete", "credential", obj_id=ref):
        enforce(cred, "identity:credentials:delete")
        c = _get(session, cred, ref)
        owned_user(session, cred, c.user_id)
        session.delete(c)
    return Response(status_code=204)
