"""Updating a user's password: a refused caller is refused (and audited) before any password hash is
taken, so a stream of refused PATCHes cannot make the server burn scrypt time; a permitted one is hashed
once, outside the write lock."""
from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

import core.keystone.policies  # noqa: F401  (registers every rule)
from core.audit import Action
from core.db.engine import Database
from core.errors import ForbiddenError
from core.keystone.auth import Authenticator, KeystoneCredential
from core.keystone.models import User
from core.keystone.passwords import verify_password
from core.keystone.routes import users as users_routes
from core.keystone.routes.users import UserUpdateBody, update_user


def _cred(role: str, scope: str = "system") -> KeystoneCredential:
    roles = {"admin": ("admin", "member", "reader"), "member": ("member", "reader")}[role]
    return KeystoneCredential(token="t", user_id=f"caller-{role}", user_name=role, user_domain_id="default",
                              user_domain_name="Default", scope=scope, roles=roles,
                              project_id="p-none" if scope == "project" else None,
                              project_domain_id="default" if scope == "project" else None)


def _request(auth: Authenticator) -> Any:
    """The two things the route reads from its request: the authenticator and the base URL for links."""
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(auth=auth)), base_url="http://127.0.0.1:1/")


@pytest.fixture
def victim(db: Database) -> str:
    with db.session() as s:
        u = User(name=f"victim-{uuid.uuid4().hex[:8]}", domain_id="default", password_hash="scrypt$unused")
        s.add(u)
        s.commit()
        return u.id


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    taken: list[str] = []
    real = users_routes.hash_password

    def counting(password: str) -> str:
        taken.append(password)
        return real(password)

    monkeypatch.setattr(users_routes, "hash_password", counting)
    return taken


def test_refused_caller_costs_no_hash_and_is_audited(db: Database, auth: Authenticator, victim: str,
                                                      hashes: list[str]) -> None:
    body = UserUpdateBody.model_validate({"user": {"password": "New-Pw-123456"}})
    with db.session() as s, pytest.raises(ForbiddenError):
        update_user(victim, _request(auth), s, _cred("member", scope="project"), body)
    assert hashes == []
    with db.session() as s:
        assert s.get(User, victim).password_hash == "scrypt$unused"  # type: ignore[union-attr]
        refused = s.scalars(select(Action).where(Action.obj_id == victim, Action.action == "update")).all()
        assert [a.success for a in refused] == [False]


def test_permitted_caller_hashes_once(db: Database, auth: Authenticator, victim: str, hashes: list[str]) -> None:
    body = UserUpdateBody.model_validate({"user": {"password": "New-Pw-123456"}})
    with db.session() as s:
        reply = update_user(victim, _request(auth), s, _cred("admin"), body)
    assert reply["user"]["id"] == victim
    assert hashes == ["New-Pw-123456"]
    with db.session() as s:
        u = s.get(User, victim)
        assert u is not None and verify_password("New-Pw-123456", u.password_hash)
