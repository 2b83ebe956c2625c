"""Security hardening (issue 21, "Security"), through a real controller: tenant isolation of
reserved IPs, canonical tokens, bounded JSON, protected projects, encrypted server passwords,
the password policy. Each case asserts the status, the error shape and that nothing changed."""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.region_agent import TestbedAgent
from tests.e2e.test_identity_support import KS, admin, grant, login, mk_project, mk_user, ok, project_user
from tests.support.controller import Controller
from tests.support.subnets import unique_octet
from tests.support.waiting import wait_for

B = "/api/s/compute_v2"
PW = "pw-Security-1"


def region(ctl: Controller, token: str) -> httpx.Client:
    return httpx.Client(base_url=ctl.url + B, headers={"X-Auth-Token": token}, timeout=60)


def flat_error(r: httpx.Response, status: int, cls: str | None = None) -> dict[str, Any]:
    """The region/glance error shape: {"code","class","details"}."""
    assert r.status_code == status, f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text}"
    body = r.json()
    assert body["code"] == status and isinstance(body["class"], str) and isinstance(body["details"], str), body
    if cls:
        assert body["class"] == cls, body
    return body


def keystone_error(r: httpx.Response, status: int) -> dict[str, Any]:
    """Keystone's shape on /v3: {"error":{"code","title","message"}}."""
    assert r.status_code == status, f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text}"
    err = r.json()["error"]
    assert err["code"] == status and err["title"] and isinstance(err["message"], str), err
    return err


@dataclass
class Tenants:
    a: httpx.Client  # admin of project A
    b: httpx.Client  # member of project B
    pa: dict[str, Any]
    pb: dict[str, Any]


@pytest.fixture(scope="module")
def tenants(controller: Controller) -> Iterator[Tenants]:
    api = admin(controller)
    pa, pb = mk_project(api), mk_project(api)
    ua, ub = mk_user(api, PW), mk_user(api, PW)
    grant(api, f"projects/{pa['id']}", ua["id"], "admin")
    grant(api, f"projects/{pb['id']}", ub["id"], "member")
    a = region(controller, login(controller, ua["name"], PW, {"project": {"id": pa["id"]}}))
    b = region(controller, login(controller, ub["name"], PW, {"project": {"id": pb["id"]}}))
    yield Tenants(a, b, pa, pb)
    a.close()
    b.close()
    api.close()


# ---- 1. reserved IPs belong to their network's project ------------------------------------------
def test_reserved_ips_are_invisible_to_another_project(controller: Controller, tenants: Tenants) -> None:
    tag = uuid.uuid4().hex[:6]
    octet = unique_octet()
    ok(controller.api.post(f"{B}/zones", json={"zone": {"name": f"sz-{tag}"}}))
    ok(controller.api.post(f"{B}/wires", json={"wire": {"name": f"sw-{tag}", "zone": f"sz-{tag}"}}))
    net = ok(tenants.a.post("/networks", json={"network": {
        "name": f"priv-{tag}", "wire": f"sw-{tag}", "guest_ip_start": f"10.{octet}.7.10",
        "guest_ip_end": f"10.{octet}.7.50", "guest_ip_mask": 24, "is_public": False}}))["network"]
    assert net["tenant_id"] == tenants.pa["id"]
    ip = f"10.{octet}.7.20"
    ok(tenants.a.post(f"/networks/{net['id']}/reserve-ip", json={"ips": [ip], "notes": "db-vip secret"}))

    mine = ok(tenants.a.get("/reservedips", params={"limit": 2048}))["reservedips"]
    rid = next(r["id"] for r in mine if r["ip_addr"] == ip)
    assert ok(tenants.a.get(f"/reservedips/{rid}"))["reservedip"]["notes"] == "db-vip secret"
    # the system admin sees every project's
    every = ok(controller.api.get(f"{B}/reservedips", params={"limit": 2048}))["reservedips"]
    assert any(r["id"] == rid for r in every)

    theirs = ok(tenants.b.get("/reservedips", params={"limit": 2048}))
    assert all(r["id"] != rid and r["ip_addr"] != ip for r in theirs["reservedips"]), theirs
    assert "db-vip secret" not in tenants.b.get("/reservedips", params={"details": "true"}).text
    flat_error(tenants.b.get(f"/reservedips/{rid}"), 404, "ResourceNotFoundError")
    flat_error(tenants.b.get(f"/networks/{net['id']}/reservedips"), 404)
    flat_error(tenants.b.delete(f"/reservedips/{rid}"), 404)
    # widening the scope does not help
    widened = ok(tenants.b.get("/reservedips", params={"scope": "system", "limit": 2048}))["reservedips"]
    assert all(r["id"] != rid for r in widened)
    # nothing changed: the owner still has it
    assert ok(tenants.a.get(f"/reservedips/{rid}"))["reservedip"]["ip_addr"] == ip


# ---- 2. only the canonical token spelling authenticates -----------------------------------------
def test_token_variants_are_401(controller: Controller) -> None:
    from tests.unit.keystone.test_tokens import variants

    api = admin(controller)
    u, p, tok = project_user(controller, api, PW)
    assert httpx.get(controller.url + KS + "/auth/tokens", timeout=30,
                     headers={"X-Auth-Token": tok, "X-Subject-Token": tok}).status_code == 200
    for bad in variants(tok):
        if "\n" in bad or "\x00" in bad or bad.startswith(" "):
            continue  # not sendable as a header value (httpx refuses / the server strips)
        keystone_error(httpx.get(controller.url + KS + "/projects", headers={"X-Auth-Token": bad}, timeout=30), 401)
        flat_error(httpx.get(controller.url + B + "/servers", headers={"X-Auth-Token": bad}, timeout=30),
                   401, "UnauthorizedError")
        # a variant as the subject of a validation is not a token either
        r = api.get("/auth/tokens", headers={"X-Subject-Token": bad})
        assert r.status_code == 404, r.text
    # nothing changed: the real token still works
    ok(httpx.get(controller.url + B + "/servers", headers={"X-Auth-Token": tok}, timeout=30))
    api.close()


# ---- 3. bounded JSON: depth and size before parsing, on every route -----------------------------
DEEP = b"[" * 10000 + b"]" * 10000


def test_deeply_nested_json_is_400_everywhere(controller: Controller) -> None:
    js = {"Content-Type": "application/json"}
    tracebacks = controller.log_path.read_text().count("Traceback")
    # unauthenticated login: Keystone's shape
    for body in (DEEP, b'{"auth":' * 5000 + b"1" + b"}" * 5000, b"[" * 65 + b"]" * 65):
        r = httpx.post(controller.url + KS + "/auth/tokens", content=body, headers=js, timeout=30)
        err = keystone_error(r, 400)
        assert "nested deeper than 64" in err["message"]
    # no content type at all: FastAPI would still parse it as JSON
    keystone_error(httpx.post(controller.url + KS + "/auth/tokens", content=DEEP, timeout=30), 400)
    api = controller.api
    before = {r["id"] for r in api.get("/api/s/image/v1/images", params={"limit": 2048}).json()["images"]}
    for path, headers in (("/api/s/image/v1/images", js), ("/api/s/image/v2/images", js),
                          ("/api/s/image/v2/images", {}), (B + "/servers", js), (B + "/networks", {}),
                          (B + "/servers/x/stop", js), ("/api/s/scheduler/scheduler/forecast", js)):
        r = api.post(path, content=DEEP, headers=headers)
        assert "nested deeper than 64" in flat_error(r, 400, "InputParameterError")["details"], path
    patch = api.patch("/api/s/image/v2/images/x", content=DEEP,
                      headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
    flat_error(patch, 400, "InputParameterError")
    # chunked bodies are read the same way; over the cap they are 413 like sized ones
    def chunks() -> Iterator[bytes]:
        yield from (DEEP[i:i + 1000] for i in range(0, len(DEEP), 1000))
    flat_error(api.post(B + "/servers", content=chunks(), headers=js), 400, "InputParameterError")
    huge = b'{"server":{"name":"' + b"x" * (9 * 1024 * 1024) + b'"}}'
    flat_error(api.post(B + "/servers", content=iter([huge[i:i + 65536] for i in range(0, len(huge), 65536)]),
                        headers=js), 413)
    keystone_error(httpx.post(controller.url + KS + "/auth/tokens", content=huge, headers=js, timeout=30), 413)
    # 64 levels are fine (the route answers on its own terms), and nothing was created
    r = api.post(B + "/servers", content=b"[" * 64 + b"]" * 64, headers=js)
    assert r.status_code == 400 and "nested" not in r.json()["details"], r.text
    after = {r["id"] for r in api.get("/api/s/image/v1/images", params={"limit": 2048}).json()["images"]}
    assert after == before
    assert controller.log_path.read_text().count("Traceback") == tracebacks
    ok(api.get(B + "/servers"))  # still serving


# ---- 4. projects that hold something cannot be deleted ------------------------------------------
def test_projects_holding_users_resources_or_platform_identities_are_403(controller: Controller) -> None:
    api = admin(controller)
    projects = ok(api.get("/projects", params={"domain_id": "default"}))["projects"]
    system = next(p for p in projects if p["name"] == "system")
    agents = next((p for p in projects if p["name"] == "host-agents"), None) or mk_project(api, name="host-agents")
    for p, words in ((system, "admin project"), (agents, "service users")):
        err = keystone_error(api.delete(f"/projects/{p['id']}"), 403)
        assert words in err["message"], err
        assert ok(api.get(f"/projects/{p['id']}"))["project"]["name"] == p["name"]  # nothing changed
    # the admin still logs in to it
    login(controller, controller.env["OS_USERNAME"], controller.env["OS_PASSWORD"], {"project": {"id": system["id"]}})

    p = mk_project(api)
    u = mk_user(api, PW)
    grant(api, f"projects/{p['id']}", u["id"], "member")
    err = keystone_error(api.delete(f"/projects/{p['id']}"), 403)
    assert "1 users" in err["message"], err
    member = region(controller, login(controller, u["name"], PW, {"project": {"id": p["id"]}}))
    pk = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl sec"
    kp = ok(member.post("/keypairs", json={"keypair": {"name": "k1", "public_key": pk}}))["keypair"]
    ok(api.delete(f"/projects/{p['id']}/users/{u['id']}/roles/member"), 204)
    err = keystone_error(api.delete(f"/projects/{p['id']}"), 403)
    assert "1 keypairs" in err["message"] and "users" not in err["message"], err
    assert ok(api.get(f"/projects/{p['id']}"))["project"]["id"] == p["id"]
    ok(controller.api.delete(f"{B}/keypairs/{kp['id']}"))
    ok(api.delete(f"/projects/{p['id']}"), 204)  # empty now: gone
    keystone_error(api.get(f"/projects/{p['id']}"), 404)
    member.close()
    api.close()


@pytest.fixture(scope="module")
def infra(controller: Controller) -> dict[str, str]:
    """A zone, wire and network of their own, for the hosts of the agent tests below."""
    return make_infra(controller)


def mk_host(controller: Controller, infra: dict[str, str]) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    name = f"sh-{tag}"
    return ok(controller.api.post(f"{B}/zones/{infra['zone']}/hosts", json={"host": {
        "name": name, "access_mac": f"00:16:3e:{tag[:2]}:{tag[2:4]}:{tag[4:6]}", "cpu_count": 16,
        "mem_size": 65536, "storages": [{"name": f"{name}-local", "capacity": 1_000_000}],
        "wires": [{"wire": infra["wire"], "bridge": "br0"}]}}))["host"]


def test_agent_backs_off_on_authentication_failures(controller: Controller, infra: dict[str, str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    api = admin(controller)
    u = mk_user(api, PW)
    system = next(p for p in ok(api.get("/projects", params={"name": "system"}))["projects"]
                  if p["domain_id"] == "default")
    grant(api, f"projects/{system['id']}", u["id"], "admin")
    host = mk_host(controller, infra)
    env = dict(controller.env, OS_USERNAME=u["name"], OS_PASSWORD=PW, OS_PROJECT_NAME="system")
    with TestbedAgent(env, host["id"], host_name=host["name"],
                      wires=({"wire": infra["wire"], "bridge": "br0"},)) as tb:
        agent = tb.agent
        assert agent is not None
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="cloudpods.agent"):
            ok(api.patch(f"/users/{u['id']}", json={"user": {"enabled": False}}))  # its logins fail from now on
            time.sleep(8)
            failed = [r for r in caplog.records if "heartbeat failed" in r.getMessage()]
        # 1 + 2 + 4 s between tries: at most 4 in 8 s (it used to be ~8 per second)
        assert 1 <= len(failed) <= 4, [r.getMessage() for r in failed]
        # each failure is counted once, in a row: the n-th message says "n in a row" (read from the
        # records, not the live counter, which the next try can move between the two reads)
        assert [r.args[0] for r in failed] == list(range(1, len(failed) + 1)), [r.getMessage() for r in failed]
        ok(api.patch(f"/users/{u['id']}", json={"user": {"enabled": True}}))
        # the next try comes at most 8 s (16 s if a 5th failed meanwhile) later; generous for a loaded box
        wait_for(lambda: agent.heartbeat_backoff.failures == 0, timeout=90)  # back: the delay starts over
    api.close()


def test_backoff_doubles_up_to_its_cap() -> None:
    from core.agent.agent import Backoff

    b = Backoff(1.0, 60.0)
    assert [b.failed() for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    b.reset()
    assert b.failed() == 1


# ---- 5. a server's password is sealed at rest --------------------------------------------------
def make_infra(ctl: Controller) -> dict[str, str]:
    """A new zone with a wire and a network (names in the answer, with their ``tag``)."""
    tag = uuid.uuid4().hex[:6]
    third = unique_octet()
    names = {"zone": f"sz-{tag}", "wire": f"sw-{tag}", "net": f"sn-{tag}", "tag": tag}
    ok(ctl.api.post(f"{B}/zones", json={"zone": {"name": names["zone"]}}))
    ok(ctl.api.post(f"{B}/wires", json={"wire": {"name": names["wire"], "zone": names["zone"]}}))
    ok(ctl.api.post(f"{B}/networks", json={"network": {
        "name": names["net"], "wire": names["wire"], "guest_ip_start": f"10.{third}.9.10",
        "guest_ip_end": f"10.{third}.9.40", "guest_ip_mask": 24, "guest_gateway": f"10.{third}.9.1"}}))
    return names


def rows_text(ctl: Controller, table: str) -> str:
    from sqlalchemy import create_engine, text

    eng = create_engine(ctl.db_url)
    try:
        with eng.connect() as c:
            return "\n".join(repr(tuple(r)) for r in c.execute(text(f"SELECT * FROM {table}")))
    finally:
        eng.dispose()


def test_server_password_is_sealed_at_rest_and_reaches_the_config_drive(tmp_path: Any) -> None:
    import io

    import pycdlib
    import yaml

    from drivers.kvm.configdrive import sha512_crypt

    ctl = Controller.init(tmp_path / "ctl")
    ctl.env["CLOUDPODS_TASK_WORKERS"] = "0"  # the create task waits in its row, as behind a busy worker
    ctl.serve()
    try:
        inf = make_infra(ctl)
        host = mk_host(ctl, inf)
        img = ok(ctl.api.post("/api/s/image/v1/images", content=b"\0" * (1 << 20), headers={
            "Content-Type": "application/octet-stream", "X-Image-Meta-Name": "tiny",
            "X-Image-Meta-Disk-Format": "raw", "X-Image-Meta-Property-Os_type": "Linux"}), 201)["image"]
        pw = "Sealed-" + uuid.uuid4().hex[:10]
        sid = ok(ctl.api.post(f"{B}/servers", json={"server": {
            "name": f"pw-{inf['tag']}", "vcpu_count": 1, "vmem_size": 64, "password": pw,
            "prefer_host": host["name"], "disks": [{"image_id": img["id"], "size": 1024}],
            "nets": [{"network": inf["net"]}]}}))["server"]["id"]
        tasks = rows_text(ctl, "tasks")
        assert "password_sealed" in tasks and pw not in tasks  # waiting, encrypted
        assert pw not in rows_text(ctl, "actions")  # nor in the audit records
        assert pw not in ctl.api.get(f"{B}/tasks", params={"limit": 2048}).text
        ctl.stop()
        del ctl.env["CLOUDPODS_TASK_WORKERS"]
        ctl.serve()
        # no agent yet: the guest's work item waits for its host with the password sealed
        def sealed_item() -> str:
            t = rows_text(ctl, "work_items")
            return t if "__password_sealed__" in t else ""

        queued = wait_for(sealed_item, timeout=60)
        assert pw not in queued
        with TestbedAgent(ctl.env, host["id"], tmp_path / "agent", host_name=host["name"],
                          wires=({"wire": inf["wire"], "bridge": "br0"},)):
            wait_for(lambda: ctl.api.get(f"{B}/servers/{sid}").json()["server"]["status"] in ("ready", "running"),
                     timeout=60)
            (iso_path,) = list((tmp_path / "agent").rglob(f"{sid}/config.iso"))
            iso = pycdlib.PyCdlib()
            iso.open(str(iso_path))
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, rr_path="/user-data")
            iso.close()
        (user,) = yaml.safe_load(buf.getvalue().decode())["chpasswd"]["users"]
        assert user["password"] == sha512_crypt(pw, user["password"].split("$")[2])  # the guest gets it
        assert pw not in rows_text(ctl, "tasks") and pw not in rows_text(ctl, "actions")
        assert pw not in rows_text(ctl, "work_items")  # sealed while queued, dropped once the host reported
        assert pw not in ctl.log_path.read_text()
    finally:
        ctl.stop()


# ---- 6. password policy ------------------------------------------------------------------------
def test_password_policy_minimum_length(controller: Controller) -> None:
    api = admin(controller)
    name = "short-" + uuid.uuid4().hex[:6]
    err = keystone_error(api.post("/users", json={"user": {"name": name, "password": "abc12"}}), 400)
    assert "at least 6 characters" in err["message"], err
    assert ok(api.get("/users", params={"name": name}))["users"] == []  # nothing created
    u = mk_user(api, "abc123")  # six is enough
    err = keystone_error(api.patch(f"/users/{u['id']}", json={"user": {"password": "12345"}}), 400)
    assert "at least 6 characters" in err["message"]
    login(controller, u["name"], "abc123")  # unchanged
    url = controller.url + KS + f"/users/{u['id']}/password"
    r = httpx.post(url, json={"user": {"password": "x", "original_password": "abc123"}}, timeout=30)
    assert "at least 6 characters" in keystone_error(r, 400)["message"]
    login(controller, u["name"], "abc123")
    # a server's password too, before anything is created
    sname = "pwsrv-" + uuid.uuid4().hex[:6]
    r = controller.api.post(f"{B}/servers", json={"server": {"name": sname, "vcpu_count": 1, "vmem_size": 64,
                                                             "password": "abc"}})
    assert "server password" in flat_error(r, 400, "InputParameterError")["details"]
    assert controller.api.get(f"{B}/servers", params={"name": sname}).json().get("total", 0) == 0
    api.close()


def test_password_policy_is_configurable(tmp_path: Any) -> None:
    ctl = Controller.init(tmp_path / "ctl")
    ctl.env["CLOUDPODS_PASSWORD_MIN_LENGTH"] = "10"
    ctl.serve()
    try:
        api = admin(ctl)
        err = keystone_error(api.post("/users", json={"user": {"name": "nine", "password": "123456789"}}), 400)
        assert "at least 10 characters" in err["message"]
        ok(api.post("/users", json={"user": {"name": "ten", "password": "1234567890"}}), 201)
        api.close()
    finally:
        ctl.stop()
