"""Who is calling: the credential every handler receives after token validation."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Credential:
    """A validated token's authority. ``scope`` is project | domain | system | unscoped."""

    token: str
    user_id: str
    user_name: str
    user_domain_id: str
    user_domain_name: str
    scope: str
    roles: tuple[str, ...] = ()
    role_ids: tuple[str, ...] = ()
    project_id: str | None = None
    project_name: str | None = None
    project_domain_id: str | None = None
    project_domain_name: str | None = None
    domain_id: str | None = None  # the domain of a domain-scoped token
    domain_name: str | None = None
    methods: tuple[str, ...] = ("password",)
    audit_id: str = ""
    audit_chain: tuple[str, ...] = ()
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    request_id: str = field(default="", compare=False)

    def for_request(self, request_id: str) -> Credential:
        """This credential tagged with one request's id (a copy: the cached one is shared). Same as
        ``dataclasses.replace(self, request_id=...)`` without re-running ``__init__`` per field,
        which cost more than the rest of a cached token check."""
        if self.request_id == request_id:
            return self
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__["request_id"] = request_id
        return new

    def has_role(self, *names: str) -> bool:
        return any(r in self.roles for r in names)

    @property
    def is_system_admin(self) -> bool:
        return self.scope == "system" and "admin" in self.roles

    @property
    def owner_domain_id(self) -> str | None:
        """The domain that owns what this caller creates."""
        return self.project_domain_id if self.scope == "project" else self.domain_id


def cred_snapshot(cred: Credential | None) -> dict[str, Any]:
    """What a task keeps of its caller (core.tasks.engine.submit): identity and roles, never the token."""
    if cred is None:
        return {}
    return {"user_id": cred.user_id, "user": cred.user_name, "project_id": cred.project_id,
            "project": cred.project_name, "domain_id": cred.project_domain_id or cred.domain_id,
            "roles": list(cred.roles), "scope": cred.scope, "request_id": cred.request_id}
