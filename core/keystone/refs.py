"""How an auth request names a domain (password login, scope, an application credential's user)."""
from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import InputParameterError
from core.keystone.models import Domain, Project, User

Owned = TypeVar("Owned", User, Project)


def find_domain(session: Session, ref: dict[str, Any] | None) -> Domain | None:
    if not ref:
        return session.get(Domain, "default")
    if not isinstance(ref, dict):
        raise InputParameterError("domain must be an object with id or name")
    if ref.get("id"):
        return session.get(Domain, str(ref["id"]))
    if ref.get("name"):
        name = str(ref["name"])
        found = session.scalar(select(Domain).where(Domain.name == name))
        # Cloudpods' keystone resolves a domain name as id-or-name: {"name": "default"} is the
        # Default domain (SDKs log in that way); an exact name match wins over an id match
        return found if found is not None else session.get(Domain, name)
    raise InputParameterError("domain needs id or name")


def find_in_domain(session: Session, model: type[Owned], ref: dict[str, Any], what: str, *,
                   enabled_domain: bool = False) -> Owned | None:
    """The user (project) ``ref`` names: by ``id``, else by ``name`` in ``ref["domain"]`` (the default
    domain when absent; none when that domain is missing, or disabled and ``enabled_domain``). A ref
    with neither is a 400 naming ``what``."""
    if ref.get("id"):
        return session.get(model, str(ref["id"]))
    if ref.get("name"):
        domain = find_domain(session, ref.get("domain"))
        if domain is None or (enabled_domain and not domain.enabled):
            return None
        return session.scalar(select(model).where(model.domain_id == domain.id, model.name == str(ref["name"])))
    raise InputParameterError(f"{what} needs id or name")
