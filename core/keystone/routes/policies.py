"""``/v3/policies``: Keystone's opaque policy blobs (stored for clients; our rules are code, see
``ocadm policy dump``)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from core.api.deps import CredentialDep, SessionDep
from core.errors import InputParameterError
from core.keystone.models import Policy
from core.keystone.routes._common import Body
from core.keystone.routes._crud import Kind
from core.keystone.views import policy_view

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


POLICIES = Kind(Policy, "policy", "policies", policy_view, filters=("type",), order_by="created_at", scoped=False,
                label=None)


def _check(b: PolicyFields) -> None:
    if b.blob is not None and len(b.blob) > MAX_BLOB:
        raise InputParameterError(f"policy blob is larger than {MAX_BLOB} bytes")
    if b.type is not None and not b.type.strip():
        raise InputParameterError("policy type must not be empty")


@router.post("/policies", status_code=201)
def create_policy(request: Request, session: SessionDep, cred: CredentialDep, body: PolicyCreateBody
                  ) -> dict[str, Any]:
    b = body.policy
    with POLICIES.creating(session, cred, b.type) as a:
        _check(b)
        p = POLICIES.added(session, a, Policy(type=b.type, blob=b.blob))
    return POLICIES.one(p, request)


POLICIES.mount_reads(router, "/policies")


@router.patch("/policies/{ref}")
def update_policy(ref: str, request: Request, session: SessionDep, cred: CredentialDep, body: PolicyUpdateBody
                  ) -> dict[str, Any]:
    b = body.policy
    with POLICIES.changing(session, cred, "update", ref) as (p, _):
        _check(b)
        if b.type is not None:
            p.type = b.type
        if b.blob is not None:
            p.blob = b.blob
    return POLICIES.refreshed(session, p, request)


POLICIES.mount_delete(router, "/policies")
