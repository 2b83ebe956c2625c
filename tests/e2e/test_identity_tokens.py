"""Tokens, passwords, lockout, revocation, key rotation and the admin reset path, end to end."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_identity_support import (
    KS,
    admin,
    client,
    grant,
    login,
    login_raw,
    mk_project,
    mk_user,
    ok,
    project_user,
    uniq,
)
from tests.support.controller import Controller, parse_rc
from tests.support.procs import cpu_seconds

PW = "pw-Token-1"


def _get(ctl: Controller, token: str, path: str = "/projects") -> httpx.Response:
    return httpx.get(ctl.url + KS + path, headers={"X-Auth-Token": token}, timeout=30)


def _wait_status(ctl: Controller, token: str, status: int, timeout: float = 60.0) -> int:
    """Replicas notice changes within a bounded delay; poll until ``status`` or time out."""
    deadline = time.monotonic() + timeout
    while True:
        got = _get(ctl, token).status_code
        if got == status or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


# ---- on the shared controller ------------------------------------------------------------------
def test_garbage_and_missing_tokens_are_401_in_keystone_shape(controller: Controller) -> None:
    for headers in ({"X-Auth-Token": "garbage"}, {"X-Auth-Token": "gAAAAA" + "x" * 200}, {}):
        r = httpx.get(controller.url + KS + "/projects", headers=headers, timeout=30)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == 401 and r.headers["www-authenticate"].startswith("Keystone")


def test_validate_check_revoke(controller: Controller) -> None:
    api = admin(controller)
    u, p, tok = project_user(controller, api, PW)
    me = client(controller, tok)
    body = ok(me.get("/auth/tokens", headers={"X-Subject-Token": tok}))["token"]
    assert body["project"]["id"] == p["id"] and {r["name"] for r in body["roles"]} == {"member", "reader"}
    assert body["expires_at"].endswith("Z") and body["catalog"]
    assert me.head("/auth/tokens", headers={"X-Subject-Token": tok}).status_code == 200
    # another user's token needs a system reader to validate
    other = login(controller, u["name"], PW, {"project": {"id": p["id"]}})
    assert api.get("/auth/tokens", headers={"X-Subject-Token": other}).status_code == 200
    assert me.delete("/auth/tokens", headers={"X-Subject-Token": tok}).status_code == 204
    assert _get(controller, tok).status_code == 401
    assert api.get("/auth/tokens", headers={"X-Subject-Token": tok}).status_code == 404
    assert _get(controller, other).status_code == 200  # only the revoked one died


def test_cloudpods_clients_get_200(controller: Controller) -> None:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": controller.env["OS_USERNAME"], "password": controller.env["OS_PASSWORD"],
        "domain": {"name": "Default"}}}}, "scope": {"project": {"name": "system", "domain": {"name": "Default"}}}}}
    r = httpx.post(controller.url + KS + "/auth/tokens", json=body, headers={"User-Agent": "yunioncloud-go/3.10"})
    assert r.status_code == 200 and r.headers["x-subject-token"]


def test_scopes_and_rescoping(controller: Controller) -> None:
    api = admin(controller)
    u = mk_user(api, PW)
    p = mk_project(api)
    grant(api, f"projects/{p['id']}", u["id"], "reader")
    grant(api, "domains/default", u["id"], "reader")
    r = login_raw(controller, u["name"], PW)  # no default project: unscoped
    assert r.status_code == 201 and "roles" not in r.json()["token"] and "catalog" not in r.json()["token"]
    unscoped = r.headers["x-subject-token"]
    projects = ok(client(controller, unscoped).get("/auth/projects"))["projects"]
    assert [x["id"] for x in projects] == [p["id"]]
    rescope = {"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}},
                        "scope": {"project": {"id": p["id"]}}}}
    r2 = httpx.post(controller.url + KS + "/auth/tokens", json=rescope, timeout=30)
    assert r2.status_code == 201, r2.text
    t2 = r2.json()["token"]
    # Keystone: a rescoped token lists the new method and those of the token it came from
    assert t2["project"]["id"] == p["id"] and t2["methods"] == ["token", "password"]
    assert t2["expires_at"] <= r.json()["token"]["expires_at"]  # never outlives its parent
    assert r.json()["token"]["audit_ids"][0] in t2["audit_ids"]
    dom = login(controller, u["name"], PW, {"domain": {"id": "default"}})
    assert ok(client(controller, dom).get("/auth/tokens", headers={"X-Subject-Token": dom}))["token"][
        "domain"]["id"] == "default"
    # no role on the system: refused; a project without a role: refused
    assert login_raw(controller, u["name"], PW, {"system": {"all": True}}).status_code == 401
    other = mk_project(api)
    assert login_raw(controller, u["name"], PW, {"project": {"id": other["id"]}}).status_code == 401
    # revoking the parent kills the rescoped child (audit chain)
    assert client(controller, unscoped).delete("/auth/tokens", headers={"X-Subject-Token": unscoped}
                                               ).status_code == 204
    assert _get(controller, r2.headers["x-subject-token"]).status_code == 401


def test_disabled_user_and_removed_role(controller: Controller) -> None:
    api = admin(controller)
    u, p, tok = project_user(controller, api, PW)
    assert _get(controller, tok).status_code == 200
    ok(api.delete(f"/projects/{p['id']}/users/{u['id']}/roles/member"), 204)
    assert _wait_status(controller, tok, 401) == 401
    grant(api, f"projects/{p['id']}", u["id"], "member")
    tok = login(controller, u["name"], PW, {"project": {"id": p["id"]}})
    ok(api.patch(f"/users/{u['id']}", json={"user": {"enabled": False}}))
    assert _wait_status(controller, tok, 401) == 401
    r = login_raw(controller, u["name"], PW)
    assert r.status_code == 401 and r.json()["error"]["message"] == login_raw(controller, "nobody-x", PW
                                                                              ).json()["error"]["message"]


def test_duplicates_are_409(controller: Controller) -> None:
    api = admin(controller)
    name = uniq("dup")
    for path, key, body in (("/domains", "domain", {}), ("/projects", "project", {"domain_id": "default"}),
                            ("/users", "user", {"domain_id": "default"}), ("/groups", "group", {}),
                            ("/roles", "role", {})):
        ok(api.post(path, json={key: {"name": name, **body}}), 201)
        r = api.post(path, json={key: {"name": name, **body}})
        assert r.status_code == 409, (path, r.text)
        assert r.json()["error"]["title"] == "Conflict"
    ok(api.post("/regions", json={"region": {"id": name}}), 201)
    assert api.post("/regions", json={"region": {"id": name}}).status_code == 409
    assert api.post("/projects", json={"project": {"name": ""}}).status_code == 400
    assert api.post("/projects", json={"project": {}}).status_code == 400
    assert api.post("/projects", content=b"{not json", headers={"content-type": "application/json"}
                    ).status_code == 400


def test_password_change_by_user_and_admin(controller: Controller) -> None:
    api = admin(controller)
    p = mk_project(api)
    u = mk_user(api, PW, default_project_id=p["id"])
    grant(api, f"projects/{p['id']}", u["id"], "member")
    tok = login(controller, u["name"], PW)  # default project scope
    url = controller.url + KS + f"/users/{u['id']}/password"
    bad = httpx.post(url, json={"user": {"password": "new-1-pw", "original_password": "wrong"}})
    assert bad.status_code == 401
    good = httpx.post(url, json={"user": {"password": "new-1-pw", "original_password": PW}})
    assert good.status_code == 204, good.text
    assert _wait_status(controller, tok, 401) == 401  # tokens issued before the change are dead
    assert login_raw(controller, u["name"], PW).status_code == 401
    assert login_raw(controller, u["name"], "new-1-pw").status_code == 201
    # climc: the user changes its own password; then the admin resets it
    env = {**controller.env, "OS_USERNAME": u["name"], "OS_PASSWORD": "new-1-pw", "OS_PROJECT_NAME": p["name"]}
    r = controller.climc("user-update", u["name"], "--password", "new-2-pw", "--original-password", "new-1-pw",
                         env=env)
    assert r.returncode == 0, r.stderr
    assert login_raw(controller, u["name"], "new-2-pw").status_code == 201
    r = controller.climc("user-update", u["id"], "--password", "new-3-pw")
    assert r.returncode == 0, r.stderr
    assert login_raw(controller, u["name"], "new-3-pw").status_code == 201
    # a member may not use the admin path
    env["OS_PASSWORD"] = "new-3-pw"
    r = controller.climc("user-update", u["id"], "--password", "x-4-pw", env=env)
    assert r.returncode != 0 and "403" in r.stderr


def test_audit_records_changes_without_secrets(controller: Controller) -> None:
    api = admin(controller)
    secret_pw = "Very-Secret-" + uniq("pw")
    u = mk_user(api, secret_pw)
    ok(api.patch(f"/users/{u['id']}", json={"user": {"password": secret_pw + "2"}}))
    assert api.post("/credentials", json={"credential": {"type": "ec2"}}).status_code == 400  # no project
    cred = ok(client(controller, controller.token()).post("/credentials", json={"credential": {"type": "ec2"}}),
              201)["credential"]
    actions = ok(api.get("/actions", params={"since": "10m", "limit": 200}))["actions"]
    text = str(actions)
    assert secret_pw not in text and cred["blob"] not in text
    assert all(secret_pw not in a["notes"] for a in actions)
    mine = [a for a in actions if a["obj_id"] == u["id"]]
    assert {a["action"] for a in mine} >= {"create", "update"} and all(a["request_id"] for a in mine)
    r = controller.climc("action-list", "--since", "10m", "--user", "admin", "--obj-type", "user", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert u["id"] in r.stdout
    # the credential blob is encrypted at rest: the database file never holds the secret
    import json
    secret = json.loads(cred["blob"])["secret"]
    db = Path(controller.data_dir) / "cloudpods.db"
    raw = db.read_bytes() + (db.with_name("cloudpods.db-wal").read_bytes()
                             if db.with_name("cloudpods.db-wal").exists() else b"")
    assert secret.encode() not in raw


def test_ocadm_policy_dump(controller: Controller) -> None:
    import json

    r = controller.ocadm("policy", "dump", "-o", "json", "--service", "identity")
    assert r.returncode == 0, r.stderr
    rules = {x["name"]: x for x in json.loads(r.stdout)}
    assert rules["identity:domains:create"] == {"name": "identity:domains:create", "role": "admin",
                                                "scopes": ["system"], "description": "Create domains."}
    r = controller.ocadm("policy", "dump")
    assert r.returncode == 0 and "unknown rules deny" in r.stdout


def test_climc_identity_commands(controller: Controller) -> None:
    name = uniq("cli")
    run = controller.climc
    assert run("domain-create", name).returncode == 0
    r = run("project-create", name, "--domain", name, "-o", "json")
    assert r.returncode == 0, r.stderr
    assert run("user-create", name, "--domain", name, "--password", PW).returncode == 0
    r = run("project-add-user", name, name, "member", "reader")
    assert r.returncode == 0, r.stderr
    r = run("role-assignments", "--effective", "-o", "json")
    assert r.returncode == 0 and f"{name}@{name}" in r.stdout
    assert run("group-create", name, "--domain", name).returncode == 0
    assert run("group-add-users", name, name).returncode == 0
    r = run("user-list", "--group", name, "-o", "json")
    assert r.returncode == 0 and name in r.stdout
    r = run("credential-create", "-o", "json")
    assert r.returncode == 0 and '"secret"' in r.stdout
    r = run("project-list", "--limit", "1")
    assert r.returncode == 0 and "Limit: 1" in r.stdout
    r = run("domain-delete", name, "no-such-domain")
    assert r.returncode == 1 and "2 of 2 domains failed" in r.stderr
    assert "404" in r.stderr and "403" in r.stderr  # enabled domain: disable first
    r = run("project-show", "no-such-project")
    assert r.returncode == 3 and "Traceback" not in r.stderr


# ---- on controllers of their own ---------------------------------------------------------------
@pytest.fixture
def strict_controller(tmp_path: Path) -> Iterator[Controller]:
    """A controller locking accounts after 3 failures."""
    ctl = Controller.init(tmp_path)
    ctl.env["CLOUDPODS_LOCKOUT_FAILURES"] = "3"
    ctl.serve()
    yield ctl
    ctl.stop()


def _login_costs(ctl: Controller, logins: dict[str, tuple[str, str]], n: int = 6
                 ) -> tuple[dict[str, float], dict[str, set[str]]]:
    """The controller's CPU seconds for n refused logins of each kind, taken in turns so the
    machine's load and the controller's background work fall on every kind alike."""
    assert ctl.proc is not None
    cost = dict.fromkeys(logins, 0.0)
    messages: dict[str, set[str]] = {k: set() for k in logins}
    for _ in range(n):
        for kind, (name, pw) in logins.items():
            before = cpu_seconds(ctl.proc.pid)
            r = login_raw(ctl, name, pw)
            cost[kind] += cpu_seconds(ctl.proc.pid) - before
            assert r.status_code == 401
            messages[kind].add(r.json()["error"]["message"])
    return cost, messages


def test_lockout_reveals_nothing_and_unlock(strict_controller: Controller) -> None:
    ctl = strict_controller
    api = admin(ctl)
    p = mk_project(api)
    victim = mk_user(api, PW, default_project_id=p["id"])
    grant(api, f"projects/{p['id']}", victim["id"], "member")
    for _ in range(3):
        assert login_raw(ctl, victim["name"], "wrong").status_code == 401
    r = login_raw(ctl, victim["name"], PW)  # right password, but locked
    assert r.status_code == 401
    # same words, and the same work (a password hash checked: scrypt's ~50 ms of CPU), for a locked
    # and an unknown user: neither the answer nor its cost says which names exist
    cost, said = _login_costs(ctl, {"locked": (victim["name"], PW), "unknown": (uniq("ghost"), PW)})
    assert said["locked"] == said["unknown"] and len(said["locked"]) == 1
    assert max(cost.values()) / max(min(cost.values()), 0.01) < 2.0, cost
    assert ok(api.get(f"/users/{victim['id']}"))["user"]["locked"] is True
    r = ctl.climc("user-unlock", victim["name"])
    assert r.returncode == 0, r.stderr
    assert login_raw(ctl, victim["name"], PW).status_code == 201


def test_revocation_survives_restart_and_keys_rotate(strict_controller: Controller) -> None:
    ctl = strict_controller
    a, b = ctl.token(), ctl.token()
    ok(httpx.delete(ctl.url + KS + "/auth/tokens", headers={"X-Auth-Token": a, "X-Subject-Token": a}), 204)
    ctl.stop()
    ctl.serve()
    assert _get(ctl, a).status_code == 401
    assert _get(ctl, b).status_code == 200
    # rotation: tokens signed by the old primary stay valid; two rotations later its key is gone
    r = ctl.ocadm("token", "rotate", "--data-dir", str(ctl.data_dir))
    assert r.returncode == 0, r.stderr
    time.sleep(2.5)  # the running controller re-reads the key repository
    assert _get(ctl, b).status_code == 200
    c = ctl.token()
    assert ctl.ocadm("token", "rotate", "--data-dir", str(ctl.data_dir)).returncode == 0
    assert _wait_status(ctl, b, 401) == 401
    assert _get(ctl, c).status_code == 200


def test_refuses_to_start_without_keys(strict_controller: Controller) -> None:
    ctl = strict_controller
    ctl.stop()
    keys = ctl.data_dir / "keys"
    keys.rename(ctl.data_dir / "keys.away")
    try:
        with pytest.raises(RuntimeError, match="no token keys"):
            ctl.serve()  # it exits long before the ready timeout
    finally:
        (ctl.data_dir / "keys.away").rename(keys)
    ctl.serve()
    assert _get(ctl, ctl.token()).status_code == 200


def test_admin_reset_password_rewrites_rc(strict_controller: Controller) -> None:
    ctl = strict_controller
    old_token = ctl.token()
    for _ in range(3):
        login_raw(ctl, "admin", "wrong")  # locked out
    assert login_raw(ctl, "admin", ctl.env["OS_PASSWORD"]).status_code == 401
    r = ctl.ocadm("admin", "reset-password", "--data-dir", str(ctl.data_dir))
    assert r.returncode == 0, r.stderr
    rc = parse_rc(ctl.data_dir / "rc_admin")
    assert rc["OS_PASSWORD"] != ctl.env["OS_PASSWORD"] and rc["OS_PASSWORD"] in r.stdout
    ctl.env.update(rc)
    assert _wait_status(ctl, old_token, 401) == 401
    r = ctl.climc("token-issue", "-o", "json")
    assert r.returncode == 0, r.stderr
    r = ctl.ocadm("admin", "reset-password", "--data-dir", str(ctl.data_dir), "--user", "nobody")
    assert r.returncode != 0 and "no user nobody" in r.stderr
    # another user: given password, rc_admin untouched
    u = mk_user(admin(ctl), PW)
    before = (ctl.data_dir / "rc_admin").read_text()
    r = ctl.ocadm("admin", "reset-password", "--data-dir", str(ctl.data_dir), "--user", u["name"],
                  "--password", "Reset-pw-9")
    assert r.returncode == 0 and "Reset-pw-9" not in r.stdout, r.stderr
    assert (ctl.data_dir / "rc_admin").read_text() == before
    assert login_raw(ctl, u["name"], "Reset-pw-9").status_code == 201


def test_expired_token_is_401(tmp_path: Path) -> None:
    ctl = Controller.init(tmp_path)
    ctl.env["CLOUDPODS_TOKEN_LIFETIME_S"] = "2"
    ctl.serve()
    try:
        tok = ctl.token()
        assert _get(ctl, tok).status_code == 200
        time.sleep(2.5)
        r = _get(ctl, tok)
        assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    finally:
        ctl.stop()
