"""Join tokens with a use count and an expiry, agents' service users, and what deleting a host removes."""
from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from core.api.context import Credential
from core.audit import Action
from core.db.base import utcnow
from core.db.engine import Database
from core.errors import InputParameterError, UnauthorizedError
from core.keystone import auth as auth_mod
from core.keystone.auth import Authenticator
from core.keystone.models import Assignment, Project, User
from core.keystone.service_users import delete_service_user, ensure_service_user
from core.region.defaults import DEFAULTS
from core.region.enroll import (
    AGENT_PROJECT,
    create_join_token,
    list_join_tokens,
    parse_ttl,
    redeem_join_token,
    unenroll_host,
)
from core.region.models import Host
from core.region.models.agents import AgentBinding, JoinToken
from core.region.registry import get_manager


def login(auth: Authenticator, s: Any, name: str, pw: str) -> tuple[str, Any]:
    return auth.login(s, {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "password": pw, "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": AGENT_PROJECT, "domain": {"name": "Default"}}}}})


def new_token(db: Database, **kw: Any) -> str:
    with db.session() as s:
        plain, _row = create_join_token(s, zone=DEFAULTS.zone, ttl_s=kw.pop("ttl_s", 600), **kw)
        return plain


def redeem(db: Database, token: str, host: str) -> Any:
    with db.session() as s:
        return redeem_join_token(s, token, host_name=host)


def admin(db: Database) -> Credential:
    with db.session() as s:
        uid = s.scalar(select(User.id).where(User.name == "admin"))
        pid = s.scalar(select(Project.id).where(Project.name == "system"))
    return Credential(token="", user_id=str(uid), user_name="admin", user_domain_id="default",
                      user_domain_name="Default", scope="project", roles=("admin", "member", "reader"),
                      project_id=str(pid), project_name="system", project_domain_id="default",
                      project_domain_name="Default")


def test_a_token_enrols_as_many_hosts_as_its_uses_then_says_it_is_used_up(db: Database) -> None:
    tok = new_token(db, uses=2)
    a, b = redeem(db, tok, "node-a"), redeem(db, tok, "node-b")
    assert a.host_id != b.host_id and a.user_name != b.user_name
    with pytest.raises(UnauthorizedError, match=r"join token used up \(2 of 2 uses\): create another"):
        redeem(db, tok, "node-c")
    with db.session() as s:
        assert s.scalar(select(Host.id).where(Host.name == "node-c")) is None  # nothing of the refused join
        (info,) = list_join_tokens(s)
    assert (info.uses, info.used, info.state) == (2, 2, "used up") and info.last_used_at is not None


def test_default_token_is_one_time(db: Database) -> None:
    tok = new_token(db)
    redeem(db, tok, "only")
    with pytest.raises(UnauthorizedError, match=r"used up \(1 of 1 uses\)"):
        redeem(db, tok, "only")  # not even the same host again


def test_rejoin_of_the_same_host_counts_and_rekeys_it(db: Database, auth: Authenticator) -> None:
    tok = new_token(db, uses=2)
    first = redeem(db, tok, "node-r")
    again = redeem(db, tok, "node-r")  # within the count: the same host and user, a new password
    assert (again.host_id, again.user_id) == (first.host_id, first.user_id) and again.password != first.password
    with db.session() as s:
        with pytest.raises(UnauthorizedError):
            login(auth, s, first.user_name, first.password)
        login(auth, s, again.user_name, again.password)
        assert len(list(s.scalars(select(AgentBinding).where(AgentBinding.host_id == first.host_id)))) == 1
    with pytest.raises(UnauthorizedError, match="used up"):
        redeem(db, tok, "node-r")


def test_expired_unknown_and_malformed_tokens_are_refused(db: Database) -> None:
    tok = new_token(db, uses=5)
    with db.session() as s:
        s.execute(update(JoinToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        (info,) = list_join_tokens(s)
        assert info.state == "expired"
    with pytest.raises(UnauthorizedError, match="expired"):
        redeem(db, tok, "late")
    with pytest.raises(UnauthorizedError, match="invalid join token"):
        redeem(db, "cpj1.nope", "late")
    with pytest.raises(UnauthorizedError, match="invalid join token"):
        redeem(db, "not-a-token", "late")


def test_concurrent_joins_never_overshoot_the_count(db: Database) -> None:
    tok = new_token(db, uses=3)
    ok: list[str] = []
    refused: list[str] = []

    def join(i: int) -> None:
        try:
            ok.append(redeem(db, tok, f"racer-{i}").host_name)
        except UnauthorizedError as e:
            refused.append(e.details)

    threads = [threading.Thread(target=join, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(ok) == 3 and len(refused) == 3, (ok, refused)
    assert all("used up (3 of 3 uses)" in r for r in refused)
    with db.session() as s:
        assert s.scalar(select(JoinToken.used)) == 3
        assert len(list(s.scalars(select(Host.id).where(Host.name.like("racer-%"))))) == 3


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h", 3600), ("2d", 172800),
                                               ("600", 600), (" 7D ", 604800)])
def test_ttl_forms(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["10y", "garbage", "", "1.5h", "-5m", "59", "8d", "0", "h", "١٢٠"])
def test_bad_ttl_is_one_readable_error(text: str) -> None:
    with pytest.raises(InputParameterError, match="--ttl") as e:
        parse_ttl(text)
    assert "\n" not in e.value.details


@pytest.mark.parametrize("uses", [0, -1, 1001])
def test_uses_out_of_range_is_refused_before_anything_is_stored(db: Database, uses: int) -> None:
    with db.session() as s, pytest.raises(InputParameterError, match=r"--uses .*between 1 and 1000"):
        create_join_token(s, zone=DEFAULTS.zone, ttl_s=600, uses=uses)
    with db.session() as s:
        assert list_join_tokens(s) == []


def test_token_creation_and_joins_are_audited(db: Database) -> None:
    tok = new_token(db, uses=2, created_by="ocadm:tester", description="k8s nodes")
    creds = redeem(db, tok, "node-audit")
    with db.session() as s:
        made = s.scalar(select(Action).where(Action.obj_type == "join_token"))
        assert made is not None and made.action == "create" and "2 use(s)" in made.notes
        assert "ocadm:tester" in made.notes and tok not in made.notes  # never the token itself
        user = s.scalar(select(Action).where(Action.obj_type == "user", Action.obj_id == creds.user_id))
        assert user is not None and user.service == "identity" and "reader of project host-agents" in user.notes


def test_service_user_is_a_reader_of_one_project_and_deleting_it_kills_its_tokens(
        db: Database, auth: Authenticator, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [time.time()]
    monkeypatch.setattr(auth_mod.time, "time", lambda: clock[0])
    with db.session() as s:
        uid, pw = ensure_service_user(s, "svc-x", "svc-project", "reader", "a test daemon")
    with db.session() as s:
        tok, cred = auth.login(s, {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "svc-x", "password": pw, "domain": {"name": "Default"}}}},
            "scope": {"project": {"name": "svc-project", "domain": {"name": "Default"}}}}})
        assert cred.roles == ("reader",) and cred.project_name == "svc-project"
        assert len(list(s.scalars(select(Assignment).where(Assignment.actor_id == uid)))) == 1
        assert auth.validate(s, tok).user_id == uid  # cached now
    with db.session() as s:
        assert delete_service_user(s, uid) == "svc-x"
        assert delete_service_user(s, uid) is None
    clock[0] += auth_mod.REVISION_POLL_S  # the bound on any replica's cache
    with db.session() as s:
        with pytest.raises(UnauthorizedError):
            auth.validate(s, tok)
        assert s.get(User, uid) is None
        assert list(s.scalars(select(Assignment).where(Assignment.actor_id == uid))) == []
        assert s.scalar(select(Action).where(Action.obj_id == uid, Action.action == "delete")) is not None


def test_ensure_service_user_needs_the_role(db: Database) -> None:
    with db.session() as s, pytest.raises(InputParameterError, match="role nope is missing"):
        ensure_service_user(s, "svc-y", "p", "nope", "")


def test_host_delete_removes_its_agent_user_and_binding(db: Database, auth: Authenticator,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [time.time()]
    monkeypatch.setattr(auth_mod.time, "time", lambda: clock[0])
    tok = new_token(db, uses=2)
    gone, kept = redeem(db, tok, "node-del"), redeem(db, tok, "node-keep")
    with db.session() as s:
        agent_tok, _c = login(auth, s, gone.user_name, gone.password)
    cred = admin(db)
    m = get_manager("hosts")
    with db.session() as s:
        host = s.get(Host, gone.host_id)
        assert host is not None
        host.enabled = False
        m.delete(s, cred, host, {})
    clock[0] += auth_mod.REVISION_POLL_S
    with db.session() as s:
        with pytest.raises(UnauthorizedError):
            auth.validate(s, agent_tok)
        with pytest.raises(UnauthorizedError):
            login(auth, s, gone.user_name, gone.password)
        login(auth, s, kept.user_name, kept.password)  # the other host's agent is untouched
        assert s.get(User, gone.user_id) is None and s.get(Host, gone.host_id) is None
        assert s.scalar(select(AgentBinding).where(AgentBinding.user_id == gone.user_id)) is None
        audit = s.scalar(select(Action).where(Action.obj_id == gone.user_id, Action.action == "delete"))
        assert audit is not None and audit.user == "admin"
        assert unenroll_host(s, gone.host_id) == []  # nothing left to remove
