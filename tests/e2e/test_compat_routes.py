"""Routes and identity forms Cloudpods' clients and OpenStack tools use (issue 20), through a
running controller: quota paths by project/domain, capabilities, glance image quotas and usages,
identity usages, version discovery at the identity root, API-gateway paths, a domain named by id."""
from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from tests.e2e.test_glance_support import client_for, tenant
from tests.support.controller import Controller

C = "/api/s/compute_v2"
K = "/api/s/identity/v3"
G = "/api/s/image/v1"


def _system_project(api: httpx.Client) -> dict[str, Any]:
    return dict(api.get(f"{K}/projects/system").json()["project"])


def test_project_quota_show_and_set_by_name_on_cloudpods_paths(controller: Controller) -> None:
    api = controller.api
    proj = _system_project(api)
    for path in (f"{C}/quotas/projects/system", f"{C}/quotas/system", f"{C}/quotas/projects/{proj['id']}"):
        r = api.get(path)
        assert r.status_code == 200, (path, r.text)
        assert r.json()["quotas"][0]["tenant_id"] == proj["id"]
    r = api.post(f"{C}/quotas/projects/system", json={"quotas": {"cpu": 333}})
    assert r.status_code == 200, r.text
    assert api.get(f"{C}/quotas").json()["quota"]["cpu"] == 333
    listed = api.get(f"{C}/quotas/projects", params={"domain_id": "default"}).json()["quotas"]
    assert any(q["tenant_id"] == proj["id"] and q["tenant"] == "system" and q["cpu"] == 333 for q in listed)
    # a domain's quota is the sum of its projects' (its own projects without a row count the defaults)
    doms = api.get(f"{C}/quotas/domains").json()["quotas"]
    default = next(d for d in doms if d["domain_id"] == "default")
    assert default["cpu"] >= 333 and default["project_domain"] == "Default"
    assert api.get(f"{C}/quotas/domains/Default").json()["quotas"][0]["cpu"] == default["cpu"]
    r = api.post(f"{C}/quotas/projects/system", json={"quotas": {"cpu": 1, "action": "sub"}})
    assert r.status_code == 400, r.text
    assert api.get(f"{C}/quotas/projects/no-such-{uuid.uuid4().hex[:6]}").status_code == 404
    r = api.post(f"{C}/quotas/projects/system", json={"quotas": {"action": "reset"}})
    assert r.status_code == 200 and r.json()["quota"]["cpu"] == 256, r.text


def test_domain_quota_set_show_and_reset(controller: Controller) -> None:
    """Cloudpods' domain-level quota: a system admin caps a domain; the cap shows in the domain's
    quota (keys without one show the sum of its projects'); a member cannot set it."""
    from tests.e2e.test_identity_support import admin, mk_domain

    with admin(controller) as a:
        dom = mk_domain(a)
    api = controller.api
    r = api.post(f"{C}/quotas/domains/{dom['name']}", json={"quotas": {"cpu": 64, "servers": 10}})
    assert r.status_code == 200, r.text
    q = r.json()["quotas"][0]
    assert q["domain_id"] == dom["id"] and q["cpu"] == 64 and q["servers"] == 10 and q["domain_limit.memory"] == -1
    shown = api.get(f"{C}/quotas/domains/{dom['id']}").json()["quota"]
    assert shown["cpu"] == 64 and shown["domain_limit.cpu"] == 64
    assert api.post(f"{C}/quotas/domains/{dom['id']}", json={"quotas": {"cpu": "many"}}).status_code == 400
    assert api.post(f"{C}/quotas/domains/{dom['id']}", json={"quotas": {"gpus": 1}}).status_code == 400
    out = controller.climc("quota-set", "--domain", dom["name"], "--cpu", "32", "-o", "json")
    assert out.returncode == 0 and '"cpu": 32' in out.stdout, out.stderr
    r = api.post(f"{C}/quotas/domains/{dom['id']}", json={"quotas": {"action": "reset"}})
    assert r.status_code == 200 and r.json()["quota"]["domain_limit.cpu"] == -1, r.text
    _pid, tok = tenant(controller)
    with client_for(controller, tok) as m:
        assert m.post(f"{C}/quotas/domains/{dom['id']}", json={"quotas": {"cpu": 1}}).status_code == 403


def test_another_projects_member_cannot_read_or_set_quotas_of_others(controller: Controller) -> None:
    pid, tok = tenant(controller)
    with client_for(controller, tok) as m:
        own = m.get(f"{C}/quotas/projects/{pid}")
        assert own.status_code == 200 and own.json()["quotas"][0]["tenant_id"] == pid
        for path in (f"{C}/quotas/projects/system", f"{C}/quotas/no-such-project", f"{C}/quotas/domains"):
            assert m.get(path).status_code == 403, path
        assert m.post(f"{C}/quotas/projects/{pid}", json={"quotas": {"cpu": 9999}}).status_code == 403
        assert m.get(f"{G}/image_quotas/system").status_code == 403
        assert m.get(f"{G}/image_quotas").json()["image_quota"]["tenant_id"] == pid
        assert m.get(f"{G}/usages").json()["usage"]["images"] == 0
        usage = m.get(f"{K}/usages").json()["usage"]
        assert usage["projects"] == 1 and usage["users"] == 1
    assert controller.api.get(f"{C}/quotas/projects/{pid}").json()["quotas"][0]["cpu"] != 9999


def test_capabilities_list_what_enabled_hosts_offer(controller: Controller) -> None:
    api = controller.api
    tag = uuid.uuid4().hex[:6]
    zone = f"cz-{tag}"
    assert api.post(f"{C}/zones", json={"zone": {"name": zone}}).status_code == 200
    empty = api.get(f"{C}/zones/{zone}/capability")
    assert empty.status_code == 200 and empty.json()["hypervisors"] == [] and empty.json()["usable"] is False
    host = api.post(f"{C}/zones/{zone}/hosts", json={"host": {
        "name": f"ch-{tag}", "access_mac": f"00:16:3e:{tag[:2]}:{tag[2:4]}:{tag[4:6]}", "cpu_count": 8,
        "mem_size": 8192, "storages": [{"name": f"ch-{tag}-local", "capacity": 100_000, "medium_type": "rotate"}]}})
    assert host.status_code == 200, host.text
    assert api.post(f"{C}/hosts/{host.json()['host']['id']}/enable").status_code == 200
    cap = api.get(f"{C}/zones/{zone}/capability").json()
    assert cap["hypervisors"] == ["kvm"] and cap["brands"] == ["OneCloud"]
    assert cap["storage_types2"] == {"kvm": ["local/rotate"]} and cap["host_cpu_archs"] == ["x86_64"]
    whole = api.get(f"{C}/capabilities").json()
    assert "kvm" in whole["hypervisors"] and "local/rotate" in whole["storage_types"]
    assert api.get(f"{C}/capabilities", params={"zone": zone}).json() == cap
    assert api.get(f"{C}/capabilities", params={"zone": f"nz-{tag}"}).status_code == 404


def test_image_quotas_on_cloudpods_paths(controller: Controller) -> None:
    api = controller.api
    pid = _system_project(api)["id"]
    r = api.post(f"{G}/image_quotas/projects/system", json={"image_quotas": {"max_bytes": 5 << 30}})
    assert r.status_code == 200, r.text
    assert api.get(f"{G}/image_quotas").json()["image_quotas"][0]["max_bytes"] == 5 << 30
    assert any(q["tenant_id"] == pid for q in api.get(f"{G}/image_quotas/projects").json()["image_quotas"])
    assert api.get(f"{G}/image_quotas/projects/{pid}").json()["image_quota"]["max_bytes"] == 5 << 30
    assert api.put(f"{G}/image_quotas/nope-{uuid.uuid4().hex[:6]}",
                   json={"image_quota": {"max_bytes": 1}}).status_code == 404
    usage = api.get(f"{G}/usages").json()["usage"]
    assert set(usage) == {"images", "image_size"}


def test_identity_root_discovery_usages_and_domain_named_by_id(controller: Controller) -> None:
    r = httpx.get(f"{controller.url}/api/s/identity", timeout=30)
    assert r.status_code == 300
    (v3,) = r.json()["versions"]["values"]
    assert v3["id"].startswith("v3") and v3["links"][0]["href"].endswith("/api/s/identity/v3/")
    assert controller.api.get(f"{K}/usages").json()["usage"]["domains"] >= 1
    # {"name": "default"} is the domain whose id is default (its name is Default), as Cloudpods resolves
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"name": "default"}, "password": controller.env["OS_PASSWORD"]}}},
        "scope": {"project": {"name": "system", "domain": {"name": "default"}}}}}
    r = httpx.post(f"{controller.url}{K}/auth/tokens", json=body, timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["token"]["project"]["name"] == "system"
    body["auth"]["identity"]["password"]["user"]["domain"] = {"name": "nodomain"}
    assert httpx.post(f"{controller.url}{K}/auth/tokens", json=body, timeout=30).status_code == 401


def test_apigateway_paths_route_to_the_service(controller: Controller) -> None:
    api = controller.api
    region = controller.env.get("OS_REGION_NAME", "region0")
    direct = api.get(f"{C}/zones").json()["zones"]
    for path in (f"/api/s/compute_v2/r/{region}/zones", f"/api/s/compute_v2/r/{region}/api/s/compute_v2/zones",
                 f"/api/s/compute_v2/r/{region}/z/zone0/zones"):
        r = api.get(path)
        assert r.status_code == 200, (path, r.text)
        assert [z["id"] for z in r.json()["zones"]] == [z["id"] for z in direct]
    assert api.get(f"/api/s/identity/r/{region}/v3/users/admin").json()["user"]["name"] == "admin"
    assert api.get(f"/api/s/image/r/{region}/v1/images").status_code == 200
    r = api.get("/api/s/compute_v2/r/no-such-region/zones")
    assert r.status_code == 404 and "no-such-region" in r.json()["details"]


def test_openapi_declares_every_path_parameter(controller: Controller) -> None:
    doc = httpx.get(f"{controller.url}/openapi.json", timeout=30).json()
    missing = []
    for path, item in doc["paths"].items():
        names = {p.strip("{}") for p in path.split("/") if p.startswith("{")}
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            declared = {p["name"] for p in op.get("parameters", []) if p.get("in") == "path"}
            if names - declared:
                missing.append(f"{method.upper()} {path}: {sorted(names - declared)}")
    assert not missing, "\n".join(missing)


def test_os_ec2_credentials_of_a_user(controller: Controller) -> None:
    pid, tok = tenant(controller)
    with client_for(controller, tok) as m:
        me = m.get(f"{K}/auth/tokens", headers={"X-Subject-Token": tok}).json()["token"]["user"]["id"]
        base = f"{K}/users/{me}/credentials/OS-EC2"
        r = m.post(base, json={"tenant_id": pid})
        assert r.status_code == 201, r.text
        c = r.json()["credential"]
        assert c["tenant_id"] == pid and c["access"] and c["secret"] and c["links"]["self"].endswith(c["access"])
        assert [x["access"] for x in m.get(base).json()["credentials"]] == [c["access"]]
        assert m.get(f"{base}/{c['access']}").json()["credential"]["secret"] == c["secret"]
        # it is the ec2 row of /v3/credentials too
        assert any(x["type"] == "ec2" for x in m.get(f"{K}/credentials").json()["credentials"])
        assert m.post(base, json={"tenant_id": _system_project(controller.api)["id"]}).status_code == 403
        assert m.post(base, json={}).status_code == 400
        admin_id = controller.api.get(f"{K}/users/admin").json()["user"]["id"]
        assert m.get(f"{K}/users/{admin_id}/credentials/OS-EC2").status_code == 403
        assert m.delete(f"{base}/{c['access']}").status_code == 204
        assert m.get(f"{base}/{c['access']}").status_code == 404


def test_keystone_user_extras_and_project_tags(controller: Controller) -> None:
    """Keystone keeps a user's unknown attributes (Tempest's ``project_id``, Cloudpods' ``displayname``)
    and a project's tags, and returns them on show and list."""
    from tests.e2e.test_identity_support import admin, ok, uniq

    with admin(controller) as a:
        name = uniq("ux")
        u = ok(a.post("/users", json={"user": {"name": name, "project_id": "p-1", "displayname": "Ann"}}), 201)["user"]
        assert u["project_id"] == "p-1" and u["displayname"] == "Ann"
        u = ok(a.patch(f"/users/{u['id']}", json={"user": {"project_id": "p-2", "displayname": None}}))["user"]
        assert u["project_id"] == "p-2" and "displayname" not in u
        assert ok(a.get(f"/users/{u['id']}"))["user"]["project_id"] == "p-2"
        assert a.post("/users", json={"user": {"name": uniq("ux"), "bad key!": 1}}).status_code == 400
        p = ok(a.post("/projects", json={"project": {"name": uniq("pt"), "tags": ["a", "b"]}}), 201)["project"]
        assert ok(a.get(f"/projects/{p['id']}"))["project"]["tags"] == ["a", "b"]
        assert a.post("/projects", json={"project": {"name": uniq("pt"), "tags": ["a", "a"]}}).status_code == 400
        ok(a.delete(f"/users/{u['id']}"), 204)
        ok(a.delete(f"/projects/{p['id']}"), 204)


def test_quota_set_of_a_project_by_name_sets_that_project_and_a_typo_is_not_found(controller: Controller) -> None:
    """climc quota-set --project takes a name as Cloudpods does; a name that is no project is a 404,
    not a quota row for a project that does not exist."""
    proj = _system_project(controller.api)
    before = controller.api.get(f"{C}/quotas").json()["quota"]["ips"]
    try:
        r = controller.climc("quota-set", "--project", "system", "--ips", str(before + 7), "-o", "json")
        assert r.returncode == 0 and json.loads(r.stdout)["tenant_id"] == proj["id"], r.stdout + r.stderr
        r = controller.climc("quota", "--project", "system", "-o", "json")
        assert json.loads(r.stdout)["ips"] == before + 7, r.stdout
        typo = f"no-such-{uuid.uuid4().hex[:6]}"
        r = controller.climc("quota-set", "--project", typo, "--ips", "1")
        assert r.returncode == 3 and f"project {typo} not found" in r.stderr, r.stderr
        assert all(q["tenant_id"] != typo for q in controller.api.get(f"{C}/quotas/projects").json()["quotas"])
    finally:
        controller.climc("quota-set", "--ips", str(before))
