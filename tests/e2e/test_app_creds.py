"""Keystone application credentials and access rules through a running controller: a member
delegates a subset of roles on a project to a named secret, scripts (and keystoneauth1) log in with
it, the token is held to the credential's roles and access rules, and deleting it ends its tokens."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.e2e.test_identity_support import KS, admin, client, grant, login, mk_project, mk_user, ok, uniq
from tests.support.controller import Controller


def _member(ctl: Controller) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(user, project, project token) of a new member."""
    with admin(ctl) as a:
        proj = mk_project(a)
        user = mk_user(a)
        grant(a, f"projects/{proj['id']}", user["id"], "member")
    return user, proj, login(ctl, user["name"], "pw-Secret-1", {"project": {"id": proj["id"]}})


def _ac_login(ctl: Controller, ref: dict[str, Any]) -> httpx.Response:
    return httpx.post(ctl.url + KS + "/auth/tokens", timeout=30, json={"auth": {"identity": {
        "methods": ["application_credential"], "application_credential": ref}}})


def test_application_credential_login_roles_and_lifecycle(controller: Controller) -> None:
    user, proj, tok = _member(controller)
    base = f"/users/{user['id']}/application_credentials"
    name = uniq("ac")
    with client(controller, tok) as m:
        ac = ok(m.post(base, json={"application_credential": {"name": name, "roles": [{"name": "reader"}]}}),
                201)["application_credential"]
        assert ac["secret"] and ac["project_id"] == proj["id"] and [r["name"] for r in ac["roles"]] == ["reader"]
        assert ac["unrestricted"] is False and ac["expires_at"] is None
        shown = ok(m.get(f"{base}/{ac['id']}"))["application_credential"]
        assert "secret" not in shown and shown["name"] == name
        assert [x["id"] for x in ok(m.get(base, params={"name": name}))["application_credentials"]] == [ac["id"]]
        dup = m.post(base, json={"application_credential": {"name": name}})
        assert dup.status_code == 409, dup.text
        # only roles the token holds, only a future expiry
        r = m.post(base, json={"application_credential": {"name": uniq("ac"), "roles": [{"name": "admin"}]}})
        assert r.status_code == 403, r.text
        past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        assert m.post(base, json={"application_credential": {"name": uniq("ac"), "expires_at": past}}
                      ).status_code == 400

    # log in by id, and by name + user; the token is the credential's project with its roles only
    r = _ac_login(controller, {"id": ac["id"], "secret": ac["secret"]})
    assert r.status_code == 201, r.text
    t = r.json()["token"]
    assert t["project"]["id"] == proj["id"] and t["methods"] == ["application_credential"]
    assert [x["name"] for x in t["roles"]] == ["reader"] and t["application_credential"]["id"] == ac["id"]
    ac_tok = r.headers["x-subject-token"]
    r = _ac_login(controller, {"name": name, "secret": ac["secret"], "user": {"id": user["id"]}})
    assert r.status_code == 201, r.text
    assert _ac_login(controller, {"id": ac["id"], "secret": "wrong-secret"}).status_code == 401
    scoped = httpx.post(controller.url + KS + "/auth/tokens", timeout=30, json={"auth": {
        "identity": {"methods": ["application_credential"],
                     "application_credential": {"id": ac["id"], "secret": ac["secret"]}},
        "scope": {"system": {"all": True}}}})
    assert scoped.status_code == 401, scoped.text

    with client(controller, ac_tok) as c:
        assert ok(c.get(f"/users/{user['id']}"))["user"]["name"] == user["name"]
        # a restricted credential's token cannot make more credentials
        assert c.post(base, json={"application_credential": {"name": uniq("ac")}}).status_code == 403
        # another user's credentials are not the caller's to read
        other, _p, other_tok = _member(controller)
        with client(controller, other_tok) as o:
            assert o.get(base).status_code == 403
            assert o.delete(f"{base}/{ac['id']}").status_code == 403
        with client(controller, tok) as m:
            assert m.delete(f"{base}/{ac['id']}").status_code == 204
        # its tokens die with it
        assert c.get(f"/users/{user['id']}").status_code == 401
    assert _ac_login(controller, {"id": ac["id"], "secret": ac["secret"]}).status_code == 401


def test_access_rules_limit_the_token_and_keystoneauth_logs_in(controller: Controller) -> None:
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    user, proj, tok = _member(controller)
    base = f"/users/{user['id']}/application_credentials"
    rules = [{"service": "identity", "method": "GET", "path": "/v3/users/*"}]
    with client(controller, tok) as m:
        ac = ok(m.post(base, json={"application_credential": {
            "name": uniq("ac"), "access_rules": rules, "unrestricted": True,
            "expires_at": (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()}}),
            201)["application_credential"]
        rule = ac["access_rules"][0]
        assert {k: rule[k] for k in ("service", "method", "path")} == rules[0]
        listed = ok(m.get(f"/users/{user['id']}/access_rules"))["access_rules"]
        assert [x["id"] for x in listed] == [rule["id"]]
        assert m.delete(f"/users/{user['id']}/access_rules/{rule['id']}").status_code == 403  # in use

    auth = v3.ApplicationCredential(auth_url=controller.url + KS, application_credential_id=ac["id"],
                                    application_credential_secret=ac["secret"])
    sess = ks_session.Session(auth=auth)
    ac_tok = sess.get_token()
    assert sess.get_project_id() == proj["id"]
    with client(controller, ac_tok) as c:
        assert c.get(f"/users/{user['id']}").status_code == 200
        denied = c.get("/projects")
        assert denied.status_code == 403 and "access rules" in denied.text, denied.text
    with httpx.Client(base_url=controller.url, headers={"X-Auth-Token": ac_tok}, timeout=60) as raw:
        assert raw.get("/api/s/compute_v2/servers").status_code == 403
    # losing the role on the project ends the credential's tokens too
    with admin(controller) as a:
        ok(a.delete(f"/projects/{proj['id']}/users/{user['id']}/roles/member"), 204)
    assert _ac_login(controller, {"id": ac["id"], "secret": ac["secret"]}).status_code == 401
