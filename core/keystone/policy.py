"""RBAC: policy rules as data, one ``enforce`` at the top of every handler, one ``restrict`` for lists.

A rule names the least role it needs (``reader`` < ``member`` < ``admin``, implied roles expanded at
token validation) and the token scopes it accepts. The *target* is built from stored data by the
handler (owner project/domain of the row), never from the request body:

    enforce(cred, "compute:servers:update", target=owner_of(server))
    stmt = restrict(select(Server), cred, Server)

Scope semantics: a system-scoped token (or one scoped to the admin project, see ``reach``) reaches
every tenant; a domain-scoped token reaches rows owned
by its domain; a project-scoped token reaches rows of its project. Another tenant's row is reported
as not found by the caller (``restrict`` / ``get_or_404``), never as forbidden.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, false

from core.api.context import Credential
from core.errors import ForbiddenError

ROLE_ORDER = {"reader": 0, "member": 1, "admin": 2}
ALL_SCOPES = ("system", "domain", "project")

T = TypeVar("T", bound=Any)


@dataclass(frozen=True)
class Rule:
    name: str
    role: str  # least role needed: reader | member | admin
    scopes: tuple[str, ...] = ALL_SCOPES
    description: str = ""

    def allows(self, cred: Credential, target: dict[str, Any] | None) -> bool:
        if reach(cred) not in self.scopes:
            return False
        if not any(ROLE_ORDER.get(r, -1) >= ROLE_ORDER[self.role] for r in cred.roles):
            return False
        return target_in_scope(cred, target)


RULES: dict[str, Rule] = {}


def register(rules: Iterable[Rule]) -> None:
    for r in rules:
        if r.role not in ROLE_ORDER:
            raise ValueError(f"rule {r.name}: unknown role {r.role}")
        RULES[r.name] = r


def reach(cred: Credential) -> str:
    """The scope a credential acts with: its own, or ``system`` for a token on the admin project
    (Keystone's ``is_admin_project``; Cloudpods' ``system`` project)."""
    if cred.scope == "project" and getattr(cred, "is_admin_project", False):
        return "system"
    return cred.scope


def is_system_admin(cred: Credential) -> bool:
    return reach(cred) == "system" and "admin" in cred.roles


def target_in_scope(cred: Credential, target: dict[str, Any] | None) -> bool:
    if not target or reach(cred) == "system":
        return True
    if cred.scope == "domain":
        dom = target.get("domain_id") or target.get("project_domain_id")
        return dom is None or dom == cred.domain_id
    if cred.scope == "project":
        proj = target.get("project_id") or target.get("tenant_id")
        if proj is not None:
            return proj == cred.project_id
        dom = target.get("domain_id")
        return dom is None or dom == cred.project_domain_id
    return False


def enforce(cred: Credential, action: str, target: dict[str, Any] | None = None) -> None:
    """Raise ForbiddenError unless ``cred`` may do ``action`` on ``target``. Unknown rules deny."""
    rule = RULES.get(action)
    if rule is None or not rule.allows(cred, target):
        raise ForbiddenError(f"you are not allowed to {action}")


def allowed(cred: Credential, action: str, target: dict[str, Any] | None = None) -> bool:
    rule = RULES.get(action)
    return rule is not None and rule.allows(cred, target)


def owner_filter(cred: Credential, model: Any, scope: str | None = None) -> tuple[str, Any] | None:
    """What ``restrict`` compares for ``cred`` over ``model``: None for every row, else the column
    and the value it must equal; the column is "" when no row is visible at all."""
    where = reach(cred)
    if scope in ALL_SCOPES and ALL_SCOPES.index(scope) > ALL_SCOPES.index(where if where in ALL_SCOPES else "project"):
        where = scope
    has_tenant = hasattr(model, "tenant_id")
    has_domain = hasattr(model, "domain_id")
    if where == "system":
        return None
    if where == "domain":
        dom = cred.domain_id if cred.scope == "domain" else cred.owner_domain_id
        return ("domain_id", dom) if has_domain else ("", None)
    if where == "project" and cred.project_id:
        if has_tenant:
            return ("tenant_id", cred.project_id)
        if has_domain:
            return ("domain_id", cred.project_domain_id)
    return ("", None)


def restrict(stmt: Select[T], cred: Credential, model: Any, scope: str | None = None) -> Select[T]:
    """Add the tenant filter for ``cred`` to a list query over ``model``.

    ``model`` has ``tenant_id`` (project) and/or ``domain_id`` columns. ``scope`` is the list
    parameter (``system|domain|project``): a caller may narrow, never widen, its reach.
    """
    f = owner_filter(cred, model, scope)
    if f is None:
        return stmt
    column, value = f
    return stmt.where(getattr(model, column) == value) if column else stmt.where(false())


def dump() -> list[dict[str, Any]]:
    return [{"name": r.name, "role": r.role, "scopes": list(r.scopes), "description": r.description}
            for r in sorted(RULES.values(), key=lambda r: r.name)]
