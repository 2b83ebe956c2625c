"""How an auth request names a domain (password login, scope, an application credential's user)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import InputParameterError
from core.keystone.models import Domain


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
