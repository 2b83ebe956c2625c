"""Application credentials as Keystone v3 defines them: login by id (or name + user) and secret, the
token they give (the credential's project, the credential's roles that the user still holds), and the
access rules such a token is held to on every request.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import InputParameterError, UnauthorizedError
from core.keystone.assignments import expand_implied, implied_map
from core.keystone.models import AccessRule, AppCredAccessRule, AppCredRole, ApplicationCredential, User
from core.keystone.passwords import DUMMY_HASH, verify_password
from core.keystone.refs import find_in_domain

AUTH_FAILED = "The request you have made requires authentication."
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# (id, service, path, method) of one access rule, as a token carries it
RuleTuple = tuple[str, str, str, str]


def _user_of(session: Session, ref: Any) -> User | None:
    if not isinstance(ref, dict):
        raise InputParameterError("auth.identity.application_credential.user must be an object with id or name")
    return find_in_domain(session, User, ref, "auth.identity.application_credential.user")


def authenticate(session: Session, ref: Any) -> ApplicationCredential:
    """The application credential named by ``auth.identity.application_credential`` if its secret
    matches and it has not expired; every failure pays one hash and says the same thing."""
    if not isinstance(ref, dict):
        raise InputParameterError("auth.identity.application_credential is required")
    secret = ref.get("secret")
    if not isinstance(secret, str) or not secret:
        raise InputParameterError("auth.identity.application_credential.secret is required")
    ac: ApplicationCredential | None = None
    if ref.get("id"):
        ac = session.get(ApplicationCredential, str(ref["id"]))
    elif ref.get("name"):
        if "user" not in ref:
            raise InputParameterError("an application credential given by name needs its user (id or name + domain)")
        user = _user_of(session, ref["user"])
        if user is not None:
            ac = session.scalar(select(ApplicationCredential).where(
                ApplicationCredential.user_id == user.id, ApplicationCredential.name == str(ref["name"])))
    else:
        raise InputParameterError("auth.identity.application_credential needs id or name")
    ok = verify_password(secret, ac.secret_hash if ac is not None else DUMMY_HASH)
    if ac is None or not ok or expired(ac):
        raise UnauthorizedError(AUTH_FAILED)
    return ac


def expired(ac: ApplicationCredential, now: datetime | None = None) -> bool:
    return ac.expires_at is not None and ac.expires_at <= (now or datetime.now(UTC))


def role_ids(session: Session, ac_id: str) -> list[str]:
    return list(session.scalars(select(AppCredRole.role_id).where(AppCredRole.app_cred_id == ac_id)))


def limit_roles(session: Session, ac_id: str, held: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The user's effective roles on the project (``held``) that the credential was given, implied
    roles of the given ones included: a role the user lost is gone from the credential's tokens too."""
    granted = expand_implied(role_ids(session, ac_id), implied_map(session))
    return [(i, n) for i, n in held if i in granted]


def rules_of(session: Session, ac_id: str) -> tuple[RuleTuple, ...]:
    rows = session.execute(select(AccessRule.id, AccessRule.service, AccessRule.path, AccessRule.method)
                           .join(AppCredAccessRule, AppCredAccessRule.access_rule_id == AccessRule.id)
                           .where(AppCredAccessRule.app_cred_id == ac_id).order_by(AccessRule.id)).all()
    return tuple((r[0], r[1], r[2], r[3]) for r in rows)


@lru_cache(maxsize=1024)
def _glob(path: str) -> re.Pattern[str]:
    """Keystone's access rule path: ``*`` is one path segment, ``**`` any number of them."""
    out = []
    for part in re.split(r"(\*\*|\*)", path):
        out.append({"**": ".*", "*": "[^/]*"}.get(part, re.escape(part)))
    return re.compile("".join(out))


def request_allowed(rules: Iterable[RuleTuple], method: str, path: str) -> bool:
    """Whether ``method path`` (the gateway path ``/api/s/<service>/<rest>``) matches a rule: the
    service type as in the catalog, the path relative to ``/api/s/<service>``."""
    m = re.match(r"^/api/s/([^/]+)(/.*)?$", path)
    if m is None:
        return False
    service, rest = m.group(1), (m.group(2) or "/").rstrip("/") or "/"
    for _id, r_service, r_path, r_method in rules:
        if r_service == service and r_method == method.upper() and _glob(r_path.rstrip("/") or "/").fullmatch(rest):
            return True
    return False
