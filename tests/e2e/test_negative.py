"""Negative tests per service, Tempest-style (issue 21, "No 5xx from input" and "Wrong answers").

Every write route of each service gets the inputs a careless user or an attacker sends: wrong JSON
types, integers beyond 64 bits, deep nesting, an oversize body, names with bidirectional-override or
invisible characters. Each case asserts a 4xx in the route's documented error shape; each service's
cases end by checking that nothing changed (the same rows, names and descriptions as before) and that
the controller still serves. One shared controller; a few hundred small requests in all.
"""
from __future__ import annotations

import concurrent.futures as cf
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.test_identity_support import admin, grant, login, mk_project, mk_user, ok
from tests.support.controller import Controller

R, K, G1, G2, S = "/api/s/compute_v2", "/api/s/identity/v3", "/api/s/image/v1", "/api/s/image/v2", "/api/s/scheduler"
HUGE = 2**70
DEEP = "[" * 3000 + "]" * 3000
BIDI = ["ab\u202ecd", "ab\u200fcd", "ab\u2066cd\u2069", "ab\u200bcd", "ab\x00cd", "ab\ncd", "x" * 300]
WRONG = [[], {}, 5, True, 1.5]
PW = "pw-Negative-1"


def uniq(p: str) -> str:
    return f"{p}-{uuid.uuid4().hex[:6]}"


def assert_error(r: httpx.Response, *statuses: int) -> None:
    """A 4xx (one of ``statuses`` if given) in the shape of the route: Keystone's on /identity/v3,
    Cloudpods' flat one elsewhere; never a 5xx."""
    what = f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:300]}"
    assert 400 <= r.status_code < 500, what
    if statuses:
        assert r.status_code in statuses, what
    body = r.json()
    if "/identity/v3" in str(r.request.url):
        err = body["error"]
        assert err["code"] == r.status_code and err["title"] and isinstance(err["message"], str), what
    else:
        assert body["code"] == r.status_code and isinstance(body["class"], str), what
        assert isinstance(body["details"], str) and body["details"], what


def serving(ctl: Controller) -> None:
    for prefix in (R, K, "/api/s/image", S):
        r = httpx.get(ctl.url + prefix + "/ping", timeout=30)
        assert r.status_code < 300, f"{prefix}/ping -> {r.status_code}"


def state(api: httpx.Client, paths: list[tuple[str, str]]) -> dict[str, Any]:
    """What a caller can see of each list: ids with names and descriptions (so a stored '[]' shows)."""
    out: dict[str, Any] = {}
    for path, key in paths:
        items = ok(api.get(path, params={"limit": 0} if path.startswith(R) else None))[key]
        out[path] = sorted((i.get("id"), i.get("name"), i.get("description"), i.get("status"),
                            i.get("size"), i.get("min_disk")) for i in items)
    return out


def raw_post(api: httpx.Client, method: str, path: str, content: bytes,
             ctype: str = "application/json") -> httpx.Response:
    return api.request(method, path, content=content, headers={"Content-Type": ctype})


def bad_bodies(wrap: str | None, template: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(label, body): each field of ``template`` with every wrong type and a huge integer, a bidi
    or invisible-character name, and a top level that is not an object."""
    def w(d: dict[str, Any]) -> Any:
        return {wrap: d} if wrap else d
    for k in template:
        for v in WRONG:
            if isinstance(template[k], bool) and isinstance(v, bool):
                continue
            if isinstance(template[k], int | float) and not isinstance(template[k], bool) and \
                    isinstance(v, int | float) and not isinstance(v, bool):
                continue
            yield f"{k}={v!r}", w({**template, k: v})
        yield f"{k}=huge", w({**template, k: HUGE})
    if "name" in template:
        for n in BIDI:
            yield f"name={n[:8]!r}", w({**template, "name": n})
    yield "list body", [template]
    if wrap:
        yield "wrapped list", {wrap: [template]}


def run_cases(api: httpx.Client, method: str, path: str, cases: Iterator[tuple[str, Any]],
              extra_ok: Callable[[httpx.Response], bool] | None = None) -> None:
    for label, body in cases:
        r = api.request(method, path, json=body)
        if extra_ok is not None and extra_ok(r):
            continue
        try:
            assert_error(r)
        except AssertionError as e:
            raise AssertionError(f"{label}: {e}") from None


def structural(api: httpx.Client, method: str, path: str) -> None:
    """Deep nesting, a huge integer in raw JSON, an unparsable body, a non-UTF-8 body: 400 each."""
    for content in (DEEP.encode(), b'{"a": ' + str(HUGE).encode() + b"}", b'{"a": 1e999}', b"{nope", b"\xff\xfe{}"):
        assert_error(raw_post(api, method, path, content), 400)


# ---- region (compute_v2) ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def region_rows(controller: Controller) -> dict[str, Any]:
    api = controller.api
    zone = ok(api.post(f"{R}/zones", json={"zone": {"name": uniq("nz")}}))["zone"]
    sg = ok(api.post(f"{R}/secgroups", json={"secgroup": {"name": uniq("nsg"), "rules": [
        {"direction": "in", "action": "allow", "protocol": "tcp", "ports": "22", "priority": 10}]}}))["secgroup"]
    kp = ok(api.post(f"{R}/keypairs", json={"keypair": {"name": uniq("nkp")}}))["keypair"]
    rule = ok(api.get(f"{R}/secgrouprules", params={"secgroup": sg["id"]}))["secgrouprules"][0]
    return {"zone": zone, "secgroup": sg, "keypair": kp, "rule": rule}


REGION_LISTS = [(f"{R}/{p}", p) for p in ("zones", "secgroups", "keypairs", "disks", "servers", "networks",
                                           "secgrouprules", "wires", "vpcs", "cloudregions", "storages", "eips",
                                           "snapshots", "reservedips")]


def test_region_refuses_bad_input_and_changes_nothing(controller: Controller, region_rows: dict[str, Any]) -> None:
    api = controller.api
    before = state(api, REGION_LISTS)
    z, sg, kp, rule = (region_rows[k] for k in ("zone", "secgroup", "keypair", "rule"))
    creates = [
        ("zones", "zone", {"name": "z", "description": "d"}),
        ("secgroups", "secgroup", {"name": "s", "description": "d"}),
        ("keypairs", "keypair", {"name": "k", "description": "d"}),
        ("disks", "disk", {"name": "d", "disk_size": 1024, "description": "d"}),
        ("servers", "server", {"name": "s", "vcpu_count": 1, "vmem_size": 512, "os_type": "Linux",
                               "disks": [{"size": 1024}], "auto_start": False}),
        ("networks", "network", {"name": "n", "guest_ip_start": "10.99.0.2", "guest_ip_end": "10.99.0.9",
                                 "guest_ip_mask": 24}),
        ("wires", "wire", {"name": "w", "zone": z["id"], "bandwidth": 1000, "mtu": 1500}),
        ("vpcs", "vpc", {"name": "v", "cidr_block": "10.0.0.0/8"}),
        ("cloudregions", "cloudregion", {"name": "c", "description": "d"}),
        ("storages", "storage", {"name": "st", "zone": z["id"], "capacity": 1024, "storage_type": "local"}),
        ("eips", "eip", {"name": "e", "bandwidth": 10}),
        ("snapshots", "snapshot", {"name": "sn", "disk": "nope"}),
        ("reservedips", "reservedip", {"network": "default", "ips": ["10.0.0.1"], "notes": "n"}),
        ("secgrouprules", "secgrouprule", {"secgroup": sg["id"], "direction": "in", "action": "allow",
                                           "protocol": "tcp", "ports": "80", "priority": 5}),
    ]
    for plural, kw, tmpl in creates:
        run_cases(api, "POST", f"{R}/{plural}", bad_bodies(kw, tmpl))
        structural(api, "POST", f"{R}/{plural}")
    updates = [(f"{R}/zones/{z['id']}", "zone", {"name": "z2", "description": "d", "location": "l"}),
               (f"{R}/secgroups/{sg['id']}", "secgroup", {"name": "s2", "description": "d"}),
               (f"{R}/keypairs/{kp['id']}", "keypair", {"name": "k2", "description": "d"}),
               (f"{R}/secgrouprules/{rule['id']}", "secgrouprule", {"priority": 20, "description": "d"})]
    for path, kw, tmpl in updates:
        run_cases(api, "PUT", path, bad_bodies(kw, tmpl))
        structural(api, "PUT", path)
    # the wrong answers the issue lists, one by one
    for body in ({"secgroup": {"name": uniq("s"), "rules": 5}}, {"disk": {"name": uniq("d"), "size": True}},
                 {"keypair": {"name": {}}}, {"server": {"name": uniq("s"), "os_type": 5, "disks": [{"size": 10}]}},
                 {"server": {"name": uniq("s"), "disks": [{"size": 10}] * 100}},
                 {"server": {"name": uniq("s"), "disks": [{"size": 10}], "nets": [{"network": "x"}] * 9}},
                 {"server": {"name": uniq("s"), "disks": [{"size": 10}],
                             "schedtags": [{"id": 5, "strategy": "require"}]}}):
        plural = next(iter(body)) + "s"
        assert_error(api.post(f"{R}/{plural}", json=body), 400)
    assert_error(api.post(f"{R}/servers/forecast", json=[1, 2]), 400)
    assert_error(api.put(f"{R}/secgroups/{sg['id']}", json={"secgroup": {"description": []}}), 400)
    # huge integers in query strings and filters, and the list grammar's other integers
    for params in ({"offset": HUGE}, {"limit": HUGE}, {"limit": -1}, {"offset": "x"},
                   {"filter": f"vcpu_count.equals({HUGE})"}, {"filter": f"vcpu_count.in(1,{HUGE})"},
                   {"filter": f"vcpu_count.between(1,{HUGE})"}, {"filter": f"vcpu_count.gt({HUGE})"},
                   {"vcpu_count": HUGE}):
        assert_error(api.get(f"{R}/servers", params=params), 400)
    for bad in ("nope", str(uuid.uuid4())):
        assert_error(api.get(f"{R}/secgrouprules/{bad}"), 404)
        assert_error(api.put(f"{R}/secgrouprules/{bad}", json={"priority": 5}), 404)
        assert_error(api.delete(f"{R}/secgrouprules/{bad}"), 404)
    assert_error(api.post(f"{R}/quotas", json={"quotas": {"cpu": HUGE}}), 400)
    assert state(api, REGION_LISTS) == before
    serving(controller)


def test_another_tenant_gets_404_on_secgroup_rules_and_may_read_shared_networks(
        controller: Controller, region_rows: dict[str, Any]) -> None:
    api = admin(controller)
    proj, user = mk_project(api), mk_user(api, PW)
    grant(api, f"projects/{proj['id']}", user["id"], "member")
    b = httpx.Client(base_url=controller.url + R, timeout=60, headers={
        "X-Auth-Token": login(controller, user["name"], PW, {"project": {"id": proj["id"]}})})
    rid = region_rows["rule"]["id"]
    assert_error(b.get(f"/secgrouprules/{rid}"), 404)
    assert_error(b.put(f"/secgrouprules/{rid}", json={"priority": 5}), 404)
    assert_error(b.delete(f"/secgrouprules/{rid}"), 404)
    assert rid not in {r["id"] for r in ok(b.get("/secgrouprules"))["secgrouprules"]}
    assert ok(controller.api.get(f"{R}/secgrouprules/{rid}"))["secgrouprule"]["priority"] == 10
    # what a caller may list it may read: the shared default network
    shared = [n for n in ok(b.get("/networks"))["networks"] if n.get("is_public")]
    assert shared, "the embedded default network is shared"
    for n in shared:
        assert ok(b.get(f"/networks/{n['id']}"))["network"]["id"] == n["id"]
        assert_error(b.put(f"/networks/{n['id']}", json={"description": "mine"}), 403)
    b.close()
    api.close()


# ---- identity (keystone) ---------------------------------------------------------------------------
ID_LISTS = [(f"{K}/{p}", p) for p in ("projects", "users", "domains", "roles", "groups", "services", "endpoints",
                                      "regions", "credentials", "policies")]


def test_identity_refuses_bad_input_and_changes_nothing(controller: Controller) -> None:
    api = controller.api
    proj = ok(api.post(f"{K}/projects", json={"project": {"name": uniq("np")}}), 201)["project"]
    user = ok(api.post(f"{K}/users", json={"user": {"name": uniq("nu"), "password": PW}}), 201)["user"]
    before = state(api, ID_LISTS)
    for path, kw, tmpl in ((f"{K}/projects", "project", {"name": "p", "description": "d", "enabled": True}),
                           (f"{K}/users", "user", {"name": "u", "password": PW, "enabled": True}),
                           (f"{K}/domains", "domain", {"name": "d", "description": "d"}),
                           (f"{K}/roles", "role", {"name": "r"}),
                           (f"{K}/groups", "group", {"name": "g", "description": "d"}),
                           (f"{K}/services", "service", {"name": "s", "type": "t", "enabled": True}),
                           (f"{K}/endpoints", "endpoint", {"service_id": "x", "interface": "public",
                                                           "url": "http://127.0.0.1:1/"}),
                           (f"{K}/regions", "region", {"id": "r", "description": "d"}),
                           (f"{K}/credentials", "credential", {"type": "ec2", "blob": "{}"}),
                           (f"{K}/policies", "policy", {"type": "application/json", "blob": "{}"})):
        run_cases(api, "POST", path, bad_bodies(kw, tmpl))
        structural(api, "POST", path)
    for path, kw, tmpl in ((f"{K}/projects/{proj['id']}", "project", {"name": "p2", "description": "d"}),
                           (f"{K}/users/{user['id']}", "user", {"name": "u2", "enabled": False})):
        run_cases(api, "PATCH", path, bad_bodies(kw, tmpl))
        structural(api, "PATCH", path)
    # login: unauthenticated and hostile
    structural(httpx.Client(base_url=controller.url, timeout=60), "POST", f"{K}/auth/tokens")
    anon = httpx.Client(base_url=controller.url, timeout=60)
    run_cases(anon, "POST", f"{K}/auth/tokens", bad_bodies("auth", {"identity": {"methods": ["password"]}}))
    assert_error(api.post(f"{K}/users", json={"user": {"name": uniq("u"), "password": "a"}}), 400)
    for params in ({"limit": HUGE}, {"offset": HUGE}):
        assert_error(api.get(f"{K}/users", params=params), 400)
    assert state(api, ID_LISTS) == before
    serving(controller)


# ---- image (glance v1 and v2) ----------------------------------------------------------------------
IMG_LISTS = [(f"{G1}/images", "images")]


def test_image_refuses_bad_input_and_changes_nothing(controller: Controller) -> None:
    api = controller.api
    img = ok(api.post(f"{G2}/images", json={"name": uniq("ni"), "disk_format": "raw",
                                            "container_format": "bare"}), 201)
    before = state(api, IMG_LISTS)
    tmpl = {"name": "i", "disk_format": "raw", "container_format": "bare", "min_disk": 1, "min_ram": 1,
            "protected": False, "description": "d"}
    run_cases(api, "POST", f"{G2}/images", bad_bodies(None, tmpl))
    run_cases(api, "POST", f"{G1}/images", bad_bodies("image", tmpl))
    run_cases(api, "PUT", f"{G1}/images/{img['id']}", bad_bodies("image", {"name": "i2", "min_disk": 1}))
    for path in (f"{G2}/images", f"{G1}/images"):
        structural(api, "POST", path)
    for body in ({"name": uniq("i"), "disk_format": 5}, {"name": uniq("i"), "properties": []},
                 {"name": uniq("i"), "container_format": {}}, {"name": uniq("i"), "min_ram": HUGE}):
        assert_error(api.post(f"{G2}/images", json=body), 400)
    for h in ({"X-Image-Meta-Size": str(HUGE)}, {"X-Image-Meta-Min-Disk": str(HUGE)},
              {"X-Image-Meta-Name": "a%E2%80%AEb"}):  # v1 headers are percent-encoded
        assert_error(api.post(f"{G1}/images", content=b"abc", headers={
            "X-Image-Meta-Name": uniq("h"), "Content-Type": "application/octet-stream", **h}), 400)
    for params in ({"limit": HUGE}, {"limit": "x"}):
        assert_error(api.get(f"{G2}/images", params=params), 400)
        assert_error(api.get(f"{G1}/images", params=params), 400)
    assert_error(api.put(f"{G1}/image_quotas/{img['owner']}", json={"image_quota": {"max_bytes": HUGE}}), 400)
    assert state(api, IMG_LISTS) == before
    serving(controller)


def test_declared_image_size_contradicted_by_the_bytes_kills_the_image(controller: Controller) -> None:
    api = controller.api
    v2 = ok(api.post(f"{G2}/images", json={"name": uniq("sz"), "disk_format": "raw", "container_format": "bare",
                                           "size": 100}), 201)
    assert_error(api.put(f"{G2}/images/{v2['id']}/file", content=b"\0" * 4096,
                         headers={"Content-Type": "application/octet-stream"}), 400)
    v1 = ok(api.post(f"{G1}/images", json={"image": {"name": uniq("sz"), "size": 100, "disk_format": "raw"}}),
            201)["image"]
    assert_error(api.put(f"{G1}/images/{v1['id']}", content=b"\0" * 4096,
                         headers={"Content-Type": "application/octet-stream"}), 400)
    for iid in (v2["id"], v1["id"]):
        got = ok(api.get(f"{G2}/images/{iid}"))
        assert got["status"] == "killed" and not got.get("size"), got
        r = api.get(f"{G2}/images/{iid}/file")
        assert r.status_code == 204 and not r.content, r  # Glance v2: an image without data has no file
    data_dir = controller.data_dir
    leftovers = [p for p in data_dir.rglob("*") if p.is_file() and any(i in p.name for i in (v1["id"], v2["id"]))]
    assert not leftovers, leftovers


def test_parallel_deletes_of_one_image_are_one_success_and_404s(controller: Controller) -> None:
    for prefix, ok_code in ((G2, 204), (G1, 200)):
        img = ok(controller.api.post(f"{G2}/images", json={"name": uniq("pd"), "disk_format": "raw",
                                                           "container_format": "bare"}), 201)
        url, headers = f"{controller.url}{prefix}/images/{img['id']}", dict(controller.api.headers)
        with cf.ThreadPoolExecutor(10) as ex:
            codes = sorted(f.result().status_code for f in
                           [ex.submit(httpx.delete, url, headers=headers, timeout=60) for _ in range(10)])
        assert codes.count(ok_code) == 1 and codes.count(404) == 9, codes


# ---- scheduler ---------------------------------------------------------------------------------------
def test_scheduler_refuses_bad_input(controller: Controller) -> None:
    api = controller.api
    tmpl = {"vcpu_count": 1, "vmem_size": 512, "count": 1, "hypervisor": "kvm"}
    for path in (f"{S}/scheduler", f"{S}/scheduler/forecast"):
        run_cases(api, "POST", path, bad_bodies(None, tmpl))
        structural(api, "POST", path)
        assert_error(api.post(path, json={"schedtags": [{"id": 5, "strategy": "require"}]}), 400)
    serving(controller)


# ---- the gateway: every service -------------------------------------------------------------------
def test_gateway_bounds_bodies_and_malformed_requests(controller: Controller) -> None:
    api = controller.api
    big = b"x" * (9 << 20)  # past the 8 MiB default cap

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 1 << 20):
            yield big[i:i + (1 << 20)]

    for path, ctype in ((f"{R}/zones", "application/json"), (f"{R}/zones", "text/plain"),
                        (f"{K}/projects", "application/json"), (f"{S}/scheduler", "application/json"),
                        (f"{G2}/images", "application/json")):
        assert_error(raw_post(api, "POST", path, big, ctype), 413)
        r = api.post(path, content=chunks(), headers={"Content-Type": ctype})  # chunked: no Content-Length
        assert_error(r, 413)
    port = int(controller.url.rsplit(":", 1)[1])
    for line in (b"GET /api/s/compute_v2/servers/\xff\xfe HTTP/1.1", b"GET /api/s/compute_v2/zones?name=\xff HTTP/1.1"):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(line + b"\r\nHost: x\r\n\r\n")
            head, _, body = s.recv(65536).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head.lower(), head
        import json

        err = json.loads(body)
        assert err["code"] == 400 and err["class"] == "InputParameterError", err
    serving(controller)


# ---- the command lines -----------------------------------------------------------------------------
def test_not_found_is_exit_3_for_batch_verbs_too(controller: Controller) -> None:
    for args in (("server-delete", "nope-1", "nope-2"), ("server-stop", "nope"), ("disk-delete", "nope"),
                 ("keypair-delete", "nope"), ("image-delete", "nope"), ("project-delete", "nope"),
                 ("secgroup-rule-delete", "nope")):
        r = controller.climc(*args)
        assert r.returncode == 3, (args, r.returncode, r.stderr)
        assert "Traceback" not in r.stderr and "404" in r.stderr, r.stderr


def test_ocadm_serve_refuses_a_busy_port_before_saying_it_serves(controller: Controller) -> None:
    r = controller.ocadm("serve", "--data-dir", str(controller.data_dir), "--port", str(controller.port), timeout=60)
    assert r.returncode != 0, r
    assert "controller on http" not in r.stderr and f":{controller.port}" in r.stderr, r.stderr
    assert "--port" in r.stderr and "Traceback" not in r.stderr, r.stderr

