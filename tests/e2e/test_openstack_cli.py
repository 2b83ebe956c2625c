"""Outside clients nobody here wrote: python-openstackclient and keystoneauth1 against our auth URL."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_identity_support import admin, grant, mk_project, mk_user, uniq
from tests.support.controller import Controller

OPENSTACK = shutil.which("openstack", path=str(Path(sys.executable).parent)) or shutil.which("openstack")


def openstack(ctl: Controller, *args: str, env: dict[str, str] | None = None) -> Any:
    if OPENSTACK is None:
        pytest.skip("python-openstackclient is not installed (pip install python-openstackclient)")
    r = subprocess.run([OPENSTACK, *args, "-f", "json"], env=env or ctl.env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, f"openstack {' '.join(args)}: {r.stderr[-2000:]}"
    return json.loads(r.stdout)


def test_openstack_token_issue(controller: Controller) -> None:
    tok = openstack(controller, "token", "issue")
    assert tok["id"] and tok["project_id"] and tok["user_id"]


def test_openstack_lists(controller: Controller) -> None:
    api = admin(controller)
    p = mk_project(api)
    u = mk_user(api)
    grant(api, f"projects/{p['id']}", u["id"], "member")
    projects = {x["Name"] for x in openstack(controller, "project", "list")}
    assert {"system", p["name"]} <= projects
    users = {x["Name"] for x in openstack(controller, "user", "list")}
    assert {"admin", u["name"]} <= users
    rows = openstack(controller, "role", "assignment", "list", "--names")
    assert any(r["Role"] == "member" and r["User"] == f"{u['name']}@Default"
               and r["Project"] == f"{p['name']}@Default" for r in rows)
    eff = openstack(controller, "role", "assignment", "list", "--effective", "--user", u["id"], "--names")
    assert {r["Role"] for r in eff} == {"member", "reader"}


def test_openstack_writes_and_member_view(controller: Controller) -> None:
    name = uniq("os")
    created = openstack(controller, "project", "create", name, "--description", "from openstack")
    assert created["name"] == name and created["domain_id"] == "default"
    user = openstack(controller, "user", "create", name, "--password", "pw-Os-1", "--project", name)
    subprocess.run([OPENSTACK or "openstack", "role", "add", "--project", name, "--user", name, "member"],
                   env=controller.env, check=True, capture_output=True, timeout=120)
    env = {**controller.env, "OS_USERNAME": name, "OS_PASSWORD": "pw-Os-1", "OS_PROJECT_NAME": name}
    tok = openstack(controller, "token", "issue", env=env)
    assert tok["project_id"] == created["id"] and tok["user_id"] == user["id"]
    mine = openstack(controller, "project", "list", env=env)
    assert [x["Name"] for x in mine] == [name]  # a member sees its own project only
    r = subprocess.run([OPENSTACK or "openstack", "project", "create", uniq("nope")], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "403" in r.stderr


def test_keystoneauth_session_finds_compute(controller: Controller) -> None:
    pytest.importorskip("keystoneauth1")
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3

    e = controller.env
    auth = v3.Password(auth_url=e["OS_AUTH_URL"], username=e["OS_USERNAME"], password=e["OS_PASSWORD"],
                       project_name=e["OS_PROJECT_NAME"], user_domain_name="Default",
                       project_domain_name="Default")
    sess = ks_session.Session(auth=auth)
    url = sess.get_endpoint(service_type="compute_v2", interface="public", region_name=e["OS_REGION_NAME"])
    assert url == f"{controller.url}/api/s/compute_v2"
    assert sess.get_endpoint(service_type="identity", interface="public").startswith(controller.url)
    assert sess.get_endpoint(service_type="log", interface="public").endswith("/api/s/identity/v3")
    assert sess.get_token() and sess.get_user_id() and sess.get_project_id()
    # the session's own identity calls work too
    r = sess.get("/projects", endpoint_filter={"service_type": "identity", "interface": "public"})
    assert r.status_code == 200 and r.json()["projects"]
