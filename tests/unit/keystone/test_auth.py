"""Login, scopes, groups and implied roles, lockout, and the token cache across two "replicas"."""
from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from core.db.engine import Database
from core.errors import InputParameterError, UnauthorizedError
from core.keystone import auth as auth_mod
from core.keystone.assignments import bump_revision, effective_roles
from core.keystone.auth import Authenticator
from core.keystone.keys import KeyRepository
from core.keystone.models import Assignment, Group, GroupMember, ImpliedRole, Project, Role, User
from core.keystone.passwords import hash_password
from core.keystone.tokens import TokenCodec
from tests.unit.keystone.conftest import ADMIN_PW


def body(name: str, pw: str, scope: dict[str, Any] | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "password": pw, "domain": {"id": "default"}}}}}}
    if scope:
        b["auth"]["scope"] = scope
    return b


def add_user(db: Database, name: str, pw: str = "pw-1") -> str:
    with db.session() as s:
        u = User(name=name, domain_id="default", password_hash=hash_password(pw))
        s.add(u)
        s.flush()
        return u.id


def role_id(db: Database, name: str) -> str:
    with db.session() as s:
        return str(s.scalar(select(Role.id).where(Role.name == name)))


def test_admin_logins_and_admin_project(db: Database, auth: Authenticator) -> None:
    with db.session() as s:
        _tok, cred = auth.login(s, body("admin", ADMIN_PW))  # default project
        assert cred.scope == "project" and cred.project_name == "system"
        assert set(cred.roles) == {"admin", "member", "reader"}  # implied roles from ks_implied_roles
        assert cred.is_admin_project is True
        _tok, sys_cred = auth.login(s, body("admin", ADMIN_PW, {"system": {"all": True}}))
        assert sys_cred.scope == "system"
        with pytest.raises(UnauthorizedError):
            auth.login(s, body("admin", "wrong"))
        with pytest.raises(InputParameterError):
            auth.login(s, {"auth": {"identity": {"methods": ["totp"]}}})


def test_group_roles_and_custom_implied_roles(db: Database, auth: Authenticator) -> None:
    uid = add_user(db, "carol")
    with db.session() as s:
        p = Project(name="p", domain_id="default")
        g = Group(name="g", domain_id="default")
        ops, audit = Role(name="ops"), Role(name="audit")
        s.add_all([p, g, ops, audit])
        s.flush()
        s.add_all([GroupMember(group_id=g.id, user_id=uid),
                   Assignment(actor_type="group", actor_id=g.id, target_type="project", target_id=p.id,
                              role_id=ops.id),
                   ImpliedRole(prior_role_id=ops.id, implied_role_id=audit.id),
                   ImpliedRole(prior_role_id=audit.id, implied_role_id=role_id(db, "reader"))])
        s.commit()
        names = {n for _i, n in effective_roles(s, uid, "project", p.id)}
        assert names == {"ops", "audit", "reader"}  # via the group, implied transitively
        _t, cred = auth.login(s, body("carol", "pw-1", {"project": {"name": "p", "domain": {"id": "default"}}}))
        assert set(cred.roles) == names


def test_lockout_counts_and_clears(db: Database, auth: Authenticator) -> None:
    add_user(db, "dave", "right-pw")
    with db.session() as s:
        for _ in range(3):
            with pytest.raises(UnauthorizedError) as e:
                auth.login(s, body("dave", "wrong"))
            assert e.value.details == auth_mod.AUTH_FAILED
        with pytest.raises(UnauthorizedError) as e:
            auth.login(s, body("dave", "right-pw"))  # locked: same answer
        assert e.value.details == auth_mod.AUTH_FAILED
        u = s.scalar(select(User).where(User.name == "dave"))
        assert u is not None and u.locked_until is not None
        u.locked_until = None
        s.commit()
        auth.login(s, body("dave", "right-pw"))


def test_revocation_reaches_another_replica(db: Database, keys: KeyRepository, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Two Authenticators over one database: a revocation on A is seen by B within the poll bound."""
    a = Authenticator(TokenCodec(keys))
    b = Authenticator(TokenCodec(keys))
    clock = [time.time()]
    monkeypatch.setattr(auth_mod.time, "time", lambda: clock[0])
    with db.session() as s:
        tok, cred = a.login(s, body("admin", ADMIN_PW))
    with db.session() as s:
        assert b.validate(s, tok).user_id == cred.user_id  # cached on B now
    with db.session() as s:
        a.revoke(s, a.validate(s, tok))
    with db.session() as s:
        with pytest.raises(UnauthorizedError):
            a.validate(s, tok)  # immediately on the replica that revoked
        assert b.validate(s, tok)  # B's cache still holds it ...
    clock[0] += auth_mod.REVISION_POLL_S
    with db.session() as s, pytest.raises(UnauthorizedError, match="revoked"):
        b.validate(s, tok)  # ... for at most REVISION_POLL_S


def test_role_removal_invalidates_cached_token(db: Database, auth: Authenticator, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    uid = add_user(db, "erin")
    clock = [time.time()]
    monkeypatch.setattr(auth_mod.time, "time", lambda: clock[0])
    with db.session() as s:
        p = Project(name="q", domain_id="default")
        s.add(p)
        s.flush()
        s.add(Assignment(actor_type="user", actor_id=uid, target_type="project", target_id=p.id,
                         role_id=role_id(db, "member")))
        s.commit()
        tok, _c = auth.login(s, body("erin", "pw-1", {"project": {"id": p.id}}))
        assert auth.validate(s, tok).roles
        s.query(Assignment).filter(Assignment.actor_id == uid).delete()
        bump_revision(s)  # what every handler that changes roles does (another replica here)
        s.commit()
        clock[0] += auth_mod.REVISION_POLL_S
        with pytest.raises(UnauthorizedError, match="no roles"):
            auth.validate(s, tok)


def test_rescope_keeps_expiry_and_chain(db: Database, auth: Authenticator) -> None:
    with db.session() as s:
        tok, cred = auth.login(s, body("admin", ADMIN_PW, {"system": {"all": True}}))
        t2, c2 = auth.login(s, {"auth": {"identity": {"methods": ["token"], "token": {"id": tok}},
                                         "scope": {"domain": {"id": "default"}}}})
        assert c2.scope == "domain" and c2.audit_chain == (cred.audit_id,)
        assert c2.expires_at is not None and cred.expires_at is not None and c2.expires_at <= cred.expires_at
        t3, c3 = auth.login(s, {"auth": {"identity": {"methods": ["token"], "token": {"id": t2}}}})
        assert c3.scope == "domain"  # no scope asked: the token's own


def test_token_variants_neither_authenticate_nor_fill_the_cache(db: Database, auth: Authenticator) -> None:
    from tests.unit.keystone.test_tokens import variants

    with db.session() as s:
        tok, cred = auth.login(s, body("admin", ADMIN_PW))
        assert auth.validate(s, tok).user_id == cred.user_id
        before = dict(auth._cache)
        for bad in variants(tok):
            with pytest.raises(UnauthorizedError):
                auth.validate(s, bad)
            assert auth.cached(bad) is None
        assert auth._cache.keys() == before.keys()  # only the real token holds a slot
