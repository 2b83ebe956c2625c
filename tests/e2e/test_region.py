"""Region infrastructure end to end: URL grammar, IPAM input checks, hosts rules, quotas."""
from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.support.controller import Controller
from tests.support.subnets import unique_octet

B = "/api/s/compute_v2"


@pytest.fixture(scope="module")
def wire(controller: Controller) -> dict[str, str]:
    tag = uuid.uuid4().hex[:6]
    z = controller.api.post(f"{B}/zones", json={"zone": {"name": f"rz-{tag}"}})
    assert z.status_code == 200, z.text
    w = controller.api.post(f"{B}/wires", json={"wire": {"name": f"rw-{tag}", "zone": f"rz-{tag}"}})
    assert w.status_code == 200, w.text
    return {"tag": tag, "zone": f"rz-{tag}", "wire": f"rw-{tag}", "octet": str(unique_octet())}


def net_body(w: dict[str, str], name: str, start: str, end: str, mask: Any = 24, gw: str | None = None) -> Any:
    o = w["octet"]
    body = {"name": f"{name}-{w['tag']}", "wire": w["wire"], "guest_ip_start": f"172.{o}.{start}",
            "guest_ip_end": f"172.{o}.{end}", "guest_ip_mask": mask}
    if gw:
        body["guest_gateway"] = f"172.{o}.{gw}"
    return {"network": body}


def test_url_grammar(controller: Controller, wire: dict[str, str]) -> None:
    api = controller.api
    by_name = api.get(f"{B}/zones/{wire['zone']}")
    assert by_name.status_code == 200
    zid = by_name.json()["zone"]["id"]
    assert api.head(f"{B}/zones/{zid}").status_code == 200
    assert api.head(f"{B}/zones/nope-{wire['tag']}").status_code == 404
    ctx = api.get(f"{B}/zones/{zid}/wires").json()
    assert [w["name"] for w in ctx["wires"]] == [wire["wire"]]
    assert api.post(f"{B}/zones/{zid}/fly", json={}).json()["class"] == "ActionNotFoundError"
    assert api.get(f"{B}/nothings").status_code == 404
    r = api.put(f"{B}/zones/{zid}", json={"description": "bare body works"})
    assert r.json()["zone"]["description"] == "bare body works"
    r = api.get(f"{B}/zones", params={"limit": 1, "details": "True"}).json()
    assert r["limit"] == 1 and len(r["zones"]) == 1 and r["total"] >= 1
    r = api.get(f"{B}/zones", params={"filter": f"name.equals({wire['zone']})"}).json()
    assert [z["name"] for z in r["zones"]] == [wire["zone"]]


@pytest.mark.parametrize(("kw", "fragment"), [
    ({"start": "0.10", "end": "0.20", "mask": 0}, "guest_ip_mask"),
    ({"start": "0.10", "end": "0.20", "mask": 33}, "guest_ip_mask"),
    ({"start": "0.20", "end": "0.10"}, "after"),
    ({"start": "0.10", "end": "0.20", "gw": "9.1"}, "guest_gateway"),
    ({"start": "0.10", "end": "0.20", "mask": "x"}, "guest_ip_mask"),
])
def test_bad_ranges(controller: Controller, wire: dict[str, str], kw: dict[str, Any], fragment: str) -> None:
    body = net_body(wire, "bad", kw["start"], kw["end"], kw.get("mask", 24), kw.get("gw"))
    r = controller.api.post(f"{B}/networks", json=body)
    assert r.status_code == 400, r.text
    assert fragment in r.json()["details"]


def test_overlap_unknown_wire_and_not_empty(controller: Controller, wire: dict[str, str]) -> None:
    api = controller.api
    r = api.post(f"{B}/networks", json=net_body(wire, "a", "1.10", "1.100", gw="1.1"))
    assert r.status_code == 200, r.text
    r = api.post(f"{B}/networks", json=net_body(wire, "b", "1.50", "1.150", gw="1.1"))
    assert r.status_code == 400 and "overlaps" in r.json()["details"]
    body = net_body(wire, "c", "2.10", "2.20")
    body["network"]["wire"] = "no-such-wire"
    r = api.post(f"{B}/networks", json=body)
    assert r.status_code == 400 and "no-such-wire" in r.json()["details"]
    r = api.post(f"{B}/wires", json={"wire": {"name": f"x-{wire['tag']}", "zone": "no-such-zone"}})
    assert r.status_code == 400 and "no-such-zone" in r.json()["details"]
    net = f"a-{wire['tag']}"
    o = wire["octet"]
    r = controller.climc("network-reserve-ip", net, f"172.{o}.1.10", f"172.{o}.1.11")
    assert r.returncode == 0, r.stderr
    r = api.delete(f"{B}/networks/{net}")
    assert r.status_code == 406 and r.json()["class"] == "NotEmptyError"
    for ip in ("10", "11"):
        assert controller.climc("network-release-reserved-ip", net, f"172.{o}.1.{ip}").returncode == 0
    assert api.delete(f"{B}/networks/{net}").status_code == 200
    # the wire is now empty, the zone is not (it has the wire)
    assert api.delete(f"{B}/zones/{wire['zone']}").json()["class"] == "NotEmptyError"


def test_host_registration_and_delete_rules(controller: Controller, wire: dict[str, str]) -> None:
    api = controller.api
    name = f"rh-{wire['tag']}"
    body = {"host": {"name": name, "access_mac": f"52:54:00:{wire['tag'][:2]}:{wire['tag'][2:4]}:01",
                     "cpu_count": 4, "mem_size": 8192}}
    first = api.post(f"{B}/zones/{wire['zone']}/hosts", json=body).json()["host"]
    again = api.post(f"{B}/zones/{wire['zone']}/hosts", json=body).json()["host"]
    assert first["id"] == again["id"] and again["host_status"] == "online"  # re-registration updates
    assert api.post(f"{B}/hosts/{name}/ping", json={}).status_code == 200
    r = controller.climc("host-list", "--zone", wire["zone"], "-o", "json")
    assert [h["name"] for h in json.loads(r.stdout)["data"]] == [name]
    r = api.delete(f"{B}/hosts/{name}")
    assert r.status_code == 400 and r.json()["class"] == "InvalidStatusError"
    assert controller.climc("host-disable", name).returncode == 0
    r = controller.climc("host-update", name, "--cpu-cmtbound", "4", "-o", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["cpu_cmtbound"] == 4.0
    assert controller.climc("host-delete", name).returncode == 0
    assert api.get(f"{B}/hosts/{name}").status_code == 404


def test_quota_set_and_out_of_quota(controller: Controller, wire: dict[str, str]) -> None:
    api = controller.api
    q = api.get(f"{B}/quotas").json()["quota"]
    try:
        r = controller.climc("quota-set", "--cpu", str(q["usage.cpu"] + 1))
        assert r.returncode == 0, r.stderr
        r = api.post(f"{B}/servers", json={"server": {"name": f"qq-{wire['tag']}", "vcpu_count": 2,
                                                      "vmem_size": 64, "disks": ["1g"]}})
        assert r.status_code == 400 and r.json()["class"] == "OutOfQuotaError"
        assert "cpu" in r.json()["details"]
    finally:
        controller.climc("quota-set", "--cpu", str(q["cpu"]))
    r = controller.climc("usage", "-o", "json")
    assert r.returncode == 0 and "servers" in json.loads(r.stdout)


def test_keypair_and_secgroup(controller: Controller, wire: dict[str, str]) -> None:
    pk = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test"
    r = controller.climc("keypair-create", f"kp-{wire['tag']}", "--public-key", pk, "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["scheme"] == "ED25519"
    r = controller.climc("keypair-create", f"kp2-{wire['tag']}", "--public-key", "not a key")
    assert r.returncode != 0 and "public_key" in r.stderr
    sg = f"sg-{wire['tag']}"
    assert controller.climc("secgroup-create", sg).returncode == 0
    r = controller.climc("secgroup-add-rule", sg, "--protocol", "tcp", "--ports", "22", "--cidr", "10.0.0.0/8",
                         "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["rules"][0]["ports"] == "22"
    r = controller.climc("secgroup-add-rule", sg, "--ports", "99999")
    assert r.returncode != 0
