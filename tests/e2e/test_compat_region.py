"""Cloudpods' list grammar through a running controller (issue 20): plain field filters, indexed and
repeated list parameters, references by id or name, as Cloudpods' Go climc and SDKs send them."""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.controller import Controller
from tests.support.subnets import unique_octet

B = "/api/s/compute_v2"


@pytest.fixture(scope="module")
def infra(controller: Controller, cirros_image: dict[str, object]) -> Iterator[dict[str, Any]]:
    api = controller.api
    tag = uuid.uuid4().hex[:6]
    third = unique_octet()
    n: dict[str, Any] = {"tag": tag, "zone": f"lz-{tag}", "wire": f"lw-{tag}", "host": f"lh-{tag}"}
    assert api.post(f"{B}/zones", json={"zone": {"name": n["zone"]}}).status_code == 200
    assert api.post(f"{B}/wires", json={"wire": {"name": n["wire"], "zone": n["zone"]}}).status_code == 200
    for i in (1, 2):
        r = api.post(f"{B}/networks", json={"network": {
            "name": f"ln{i}-{tag}", "wire": n["wire"], "guest_ip_start": f"10.{third}.{i}.10",
            "guest_ip_end": f"10.{third}.{i}.40", "guest_ip_mask": 24, "guest_gateway": f"10.{third}.{i}.1"}})
        assert r.status_code == 200, r.text
    host = api.post(f"{B}/zones/{n['zone']}/hosts", json={"host": {
        "name": n["host"], "access_mac": f"00:16:3f:{tag[:2]}:{tag[2:4]}:{tag[4:6]}", "cpu_count": 16,
        "mem_size": 65536, "storages": [{"name": f"{n['host']}-local", "capacity": 1_000_000}],
        "wires": [{"wire": n["wire"], "bridge": "br0"}]}})
    assert host.status_code == 200, host.text
    n["host_id"] = host.json()["host"]["id"]
    servers = []
    for i, net in ((1, 1), (2, 1), (3, 2)):
        r = api.post(f"{B}/servers", json={"server": {
            "name": f"ls{i}-{tag}", "vcpu_count": 1, "vmem_size": 256, "prefer_host": n["host"],
            "disks": [{"image_id": "cirros", "size": 1024}], "nets": [{"network": f"ln{net}-{tag}"}]}})
        assert r.status_code == 200, r.text
        servers.append(r.json()["server"])
    n["servers"] = servers
    # no agent serves this host: each server settles in "deploying" (a stable status to filter on)
    end = time.monotonic() + 60
    while time.monotonic() < end and any(api.get(f"{B}/servers/{s['id']}").json()["server"]["status"] != "deploying"
                                         for s in servers):
        time.sleep(0.1)
    yield n


def names(r: Any, key: str) -> list[str]:
    assert r.status_code == 200, r.text
    return sorted(x["name"] for x in r.json()[key])


def test_name_filter_filters(controller: Controller, infra: dict[str, Any]) -> None:
    t = infra["tag"]
    api = controller.api
    assert names(api.get(f"{B}/servers", params={"name": f"ls1-{t}"}), "servers") == [f"ls1-{t}"]
    # a name that does not exist lists nothing (a client's show-by-name must not see "duplicates")
    r = api.get(f"{B}/servers", params={"name": f"nope-{t}"})
    assert r.json()["servers"] == [] and "total" not in r.json()
    assert names(api.get(f"{B}/zones", params={"name": infra["zone"]}), "zones") == [infra["zone"]]
    assert names(api.get(f"{B}/networks", params={"name": f"ln2-{t}"}), "networks") == [f"ln2-{t}"]
    assert names(api.get(f"{B}/hosts", params={"name": infra["host"]}), "hosts") == [infra["host"]]


def test_indexed_and_repeated_values_mean_in(controller: Controller, infra: dict[str, Any]) -> None:
    t = infra["tag"]
    api = controller.api
    want = [f"ls1-{t}", f"ls3-{t}"]
    assert names(api.get(f"{B}/servers?name.0=ls1-{t}&name.1=ls3-{t}"), "servers") == want
    assert names(api.get(f"{B}/servers?name=ls1-{t}&name=ls3-{t}"), "servers") == want
    ids = [s["id"] for s in infra["servers"][:2]]
    assert names(api.get(f"{B}/servers?id.0={ids[0]}&id.1={ids[1]}"), "servers") == [f"ls1-{t}", f"ls2-{t}"]
    got = names(api.get(f"{B}/servers?host={infra['host']}&status.0=deploying&status.1=running"), "servers")
    assert got == [f"ls{i}-{t}" for i in (1, 2, 3)]
    got = names(api.get(f"{B}/servers?host={infra['host']}&status=running&status=deploying"), "servers")
    assert got == [f"ls{i}-{t}" for i in (1, 2, 3)]
    assert names(api.get(f"{B}/servers?host={infra['host']}&status.0=no-such&status.1=other"), "servers") == []


def test_indexed_filters_and_filter_any(controller: Controller, infra: dict[str, Any]) -> None:
    t = infra["tag"]
    api = controller.api
    both = f"filter.0=name.in(ls1-{t},ls2-{t})&filter.1=name.equals(ls2-{t})"
    assert names(api.get(f"{B}/servers?{both}"), "servers") == [f"ls2-{t}"]
    assert names(api.get(f"{B}/servers?{both}&filter_any=true"), "servers") == [f"ls1-{t}", f"ls2-{t}"]
    assert names(api.get(f"{B}/servers?filter=name.equals(ls1-{t})&filter=name.equals(ls3-{t})&filter_any=True"),
                 "servers") == [f"ls1-{t}", f"ls3-{t}"]


def test_references_by_id_or_name(controller: Controller, infra: dict[str, Any]) -> None:
    t = infra["tag"]
    api = controller.api
    every = [f"ls{i}-{t}" for i in (1, 2, 3)]
    assert names(api.get(f"{B}/servers", params={"host": infra["host"]}), "servers") == every
    assert names(api.get(f"{B}/servers", params={"host_id": infra["host_id"]}), "servers") == every
    assert names(api.get(f"{B}/servers", params={"host_id": infra["host"]}), "servers") == every
    assert names(api.get(f"{B}/servers", params={"zone": infra["zone"]}), "servers") == every
    assert names(api.get(f"{B}/servers", params={"network": f"ln2-{t}"}), "servers") == [f"ls3-{t}"]
    assert names(api.get(f"{B}/servers", params={"host": f"nope-{t}"}), "servers") == []
    assert names(api.get(f"{B}/hosts", params={"zone": infra["zone"]}), "hosts") == [infra["host"]]
    assert names(api.get(f"{B}/hosts", params={"wire": infra["wire"]}), "hosts") == [infra["host"]]
    assert names(api.get(f"{B}/hosts", params={"storage": f"{infra['host']}-local"}), "hosts") == [infra["host"]]
    assert names(api.get(f"{B}/networks", params={"zone": infra["zone"]}), "networks") == [f"ln1-{t}", f"ln2-{t}"]
    assert names(api.get(f"{B}/networks", params={"wire": infra["wire"]}), "networks") == [f"ln1-{t}", f"ln2-{t}"]
    assert names(api.get(f"{B}/wires", params={"zone": infra["zone"]}), "wires") == [infra["wire"]]
    assert names(api.get(f"{B}/storages", params={"zone": infra["zone"]}), "storages") == [f"{infra['host']}-local"]


def test_tenant_and_project_filters(controller: Controller, infra: dict[str, Any]) -> None:
    t = infra["tag"]
    api = controller.api
    tenant_id = infra["servers"][0]["tenant_id"]
    project = api.get(f"/api/s/identity/v3/projects/{tenant_id}").json()["project"]["name"]
    every = [f"ls{i}-{t}" for i in (1, 2, 3)]
    for key, val in (("tenant", project), ("tenant", tenant_id), ("project", project), ("project_id", tenant_id),
                     ("tenant_id", tenant_id)):
        assert names(api.get(f"{B}/servers", params={"host": infra["host"], key: val}), "servers") == every, key
    assert names(api.get(f"{B}/servers", params={"host": infra["host"], "tenant": f"nope-{t}"}), "servers") == []


def test_plain_typed_fields_and_scope_words(controller: Controller, infra: dict[str, Any]) -> None:
    t = infra["tag"]
    api = controller.api
    assert names(api.get(f"{B}/servers", params={"host": infra["host"], "vcpu_count": "1"}), "servers") == \
        [f"ls{i}-{t}" for i in (1, 2, 3)]
    assert names(api.get(f"{B}/servers", params={"host": infra["host"], "vcpu_count": "2"}), "servers") == []
    r = api.get(f"{B}/servers", params={"vcpu_count": "x"})
    assert r.status_code == 400 and r.json()["class"] == "InputParameterError"
    enabled = api.get(f"{B}/hosts/{infra['host']}").json()["host"]["enabled"]
    assert names(api.get(f"{B}/hosts", params={"name": infra["host"], "enabled": str(enabled)}), "hosts") == \
        [infra["host"]]
    assert names(api.get(f"{B}/hosts", params={"name": infra["host"], "enabled": str(not enabled)}), "hosts") == []
    for scope in ("max", "system", "user", "project"):
        assert api.get(f"{B}/zones", params={"scope": scope}).status_code == 200, scope


# ---- create grammar -------------------------------------------------------------------------------
def test_disk_size_minus_one_is_the_image_size(controller: Controller, infra: dict[str, Any]) -> None:
    t = infra["tag"]
    api = controller.api
    sizes = {}
    for label, disk in (("auto", {"image_id": "cirros", "size": -1}), ("none", {"image_id": "cirros"}),
                        ("str", "cirros:autoextend")):
        r = api.post(f"{B}/servers/forecast", json={"server": {
            "name": f"f-{label}-{t}", "vcpu_count": 1, "vmem_size": 256, "prefer_host": infra["host"],
            "disks": [disk], "nets": [{"network": f"ln1-{t}"}]}})
        assert r.status_code == 200, r.text
        assert r.json()["forecast"]["can_create"] is True, r.text
    for label, disk in (("auto", {"image_id": "cirros", "size": -1}), ("none", {"image_id": "cirros"})):
        r = api.post(f"{B}/servers", json={"server": {
            "name": f"la-{label}-{t}", "vcpu_count": 1, "vmem_size": 256, "prefer_host": infra["host"],
            "disks": [disk], "nets": [{"network": f"ln1-{t}"}]}})
        assert r.status_code == 200, r.text
        sid = r.json()["server"]["id"]
        end = time.monotonic() + 60
        while time.monotonic() < end and not api.get(f"{B}/servers/{sid}").json()["server"]["disks_info"]:
            time.sleep(0.1)
        sizes[label] = api.get(f"{B}/servers/{sid}").json()["server"]["disk"]
    assert sizes["auto"] == sizes["none"] > 0
    # a data disk has no image to take a size from
    r = api.post(f"{B}/servers", json={"server": {
        "name": f"lb-{t}", "vcpu_count": 1, "vmem_size": 256, "prefer_host": infra["host"],
        "disks": [{"image_id": "cirros"}, {"size": -1}], "nets": [{"network": f"ln1-{t}"}]}})
    assert r.status_code == 400 and "disks.1.size" in r.json()["details"], r.text


def test_wire_mtu_zero_is_the_default(controller: Controller, infra: dict[str, Any]) -> None:
    t = infra["tag"]
    api = controller.api
    r = api.post(f"{B}/wires", json={"wire": {"name": f"lm-{t}", "zone": infra["zone"], "mtu": 0}})
    assert r.status_code == 200, r.text
    assert r.json()["wire"]["mtu"] == 1500
    r = api.put(f"{B}/wires/lm-{t}", json={"wire": {"mtu": 9000}})
    assert r.status_code == 200 and r.json()["wire"]["mtu"] == 9000, r.text
    r = api.put(f"{B}/wires/lm-{t}", json={"wire": {"mtu": 0}})
    assert r.status_code == 200 and r.json()["wire"]["mtu"] == 1500, r.text


def test_scheduler_takes_names_wherever_ids(controller: Controller, infra: dict[str, Any]) -> None:
    t = infra["tag"]
    api = controller.api
    net = api.get(f"{B}/networks/ln2-{t}").json()["network"]
    zone = api.get(f"{B}/zones/{infra['zone']}").json()["zone"]
    storage = api.get(f"{B}/storages/{infra['host']}-local").json()["storage"]
    by_id = {"vcpu_count": 1, "vmem_size": 256, "prefer_zone": zone["id"], "prefer_host": infra["host_id"],
             "disks": [{"size": 1024, "storage_id": storage["id"]}], "networks": [{"network": net["id"]}]}
    by_name = {"vcpu_count": 1, "vmem_size": 256, "prefer_zone": infra["zone"], "prefer_host": infra["host"],
               "disks": [{"size": 1024, "storage": storage["name"], "image_id": "cirros"}],
               "nets": [{"network": net["name"], "wire": infra["wire"]}]}
    for body in (by_id, by_name):
        r = api.post("/api/s/scheduler/scheduler/forecast", json={"scheduler": body})
        assert r.status_code == 200, r.text
        assert r.json()["can_create"] is True, r.text
        r = api.post("/api/s/scheduler/scheduler", json=body)
        assert r.status_code == 200, r.text
        cands = r.json()["candidates"]
        assert [c["host_id"] for c in cands] == [infra["host_id"]], r.text
    r = api.post("/api/s/scheduler/scheduler/forecast", json={**by_name, "nets": [{"network": f"nope-{t}"}]})
    assert r.status_code in (200, 400), r.text
    assert r.status_code == 400 or r.json()["can_create"] is False
