"""Policy rules as data: personas against rules, scope reach, tenant restriction of list queries."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

import core.keystone.policies  # noqa: F401  (registers every rule)
from core.api.context import Credential
from core.audit import Action
from core.db.engine import Database
from core.errors import ForbiddenError
from core.keystone.auth import KeystoneCredential
from core.keystone.policy import RULES, allowed, dump, enforce, reach, restrict


def persona(scope: str, role: str, **kw: Any) -> Credential:
    roles = {"admin": ("admin", "member", "reader"), "member": ("member", "reader"), "reader": ("reader",)}[role]
    return KeystoneCredential(token="t", user_id="u", user_name="u", user_domain_id="d1", user_domain_name="D1",
                              scope=scope, roles=roles, **kw)


SYSADMIN = persona("system", "admin")
SYSREADER = persona("system", "reader")
DOMADMIN = persona("domain", "admin", domain_id="d1")
PROJMEMBER = persona("project", "member", project_id="p1", project_domain_id="d1")
ADMPROJ = persona("project", "admin", project_id="sys", project_domain_id="default", is_admin_project=True)


@pytest.mark.parametrize(("cred", "action", "target", "ok"), [
    (SYSADMIN, "identity:domains:create", None, True),
    (SYSREADER, "identity:domains:create", None, False),
    (SYSREADER, "identity:domains:list", None, True),
    (DOMADMIN, "identity:projects:create", {"domain_id": "d1"}, True),
    (DOMADMIN, "identity:projects:create", {"domain_id": "d2"}, False),
    (PROJMEMBER, "identity:projects:create", {"domain_id": "d1"}, False),
    (PROJMEMBER, "identity:projects:get", {"domain_id": "d1", "project_id": "p1"}, True),
    (PROJMEMBER, "identity:projects:get", {"domain_id": "d1", "project_id": "p2"}, False),
    (ADMPROJ, "identity:domains:create", None, True),
    (ADMPROJ, "identity:projects:update", {"domain_id": "d9", "project_id": "p9"}, True),
    (SYSADMIN, "identity:no:such:rule", None, False),
])
def test_rules(cred: Credential, action: str, target: dict[str, Any] | None, ok: bool) -> None:
    assert allowed(cred, action, target) is ok
    if not ok:
        with pytest.raises(ForbiddenError):
            enforce(cred, action, target)


def test_reach() -> None:
    assert reach(ADMPROJ) == "system" and reach(PROJMEMBER) == "project" and reach(DOMADMIN) == "domain"
    plain = Credential(token="t", user_id="u", user_name="u", user_domain_id="d", user_domain_name="D",
                       scope="project", roles=("admin",), project_id="x")
    assert reach(plain) == "project"  # a foreign Credential without the flag stays in its project


def test_restrict_on_a_real_query(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    Action.__table__.create(db.engine)
    with db.session() as s:
        for i, (tenant, dom) in enumerate([("p1", "d1"), ("p2", "d1"), ("p3", "d2")]):
            s.add(Action(id=str(i), action="x", obj_type="y", tenant_id=tenant, domain_id=dom))
        s.commit()

        def ids(cred: Credential, scope: str | None = None) -> set[str]:
            return {a.tenant_id for a in s.scalars(restrict(select(Action), cred, Action, scope))}

        assert ids(SYSADMIN) == {"p1", "p2", "p3"} and ids(ADMPROJ) == {"p1", "p2", "p3"}
        assert ids(DOMADMIN) == {"p1", "p2"}
        assert ids(PROJMEMBER) == {"p1"}
        assert ids(PROJMEMBER, "system") == {"p1"}  # a scope parameter narrows, never widens
        assert ids(DOMADMIN, "project") == set()
    db.dispose()


def test_dump_lists_every_rule_with_valid_roles() -> None:
    rows = dump()
    assert len(rows) == len(RULES) and all(r["role"] in ("reader", "member", "admin") for r in rows)
    assert {"identity:grants:create", "identity:credentials:manage_others"} <= {r["name"] for r in rows}
