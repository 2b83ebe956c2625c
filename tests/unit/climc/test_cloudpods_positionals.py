"""Cloudpods' climc positionals on commands whose own order differs; ours keep working (fake controller)."""
from __future__ import annotations

from typing import Any

import httpx

from tests.support.mockcloud import MockCloud, body_of


def _capture(cloud: MockCloud, method: str, path: str, key: str) -> list[Any]:
    seen: list[Any] = []

    def handler(req: httpx.Request) -> Any:
        seen.append(body_of(req)[key])
        return {key: {"id": "x", **body_of(req)[key]}}
    cloud.route(method, path, handler)
    return seen


def test_secgroup_add_rule_positionals() -> None:
    cloud = MockCloud()
    seen: list[Any] = []

    def add(req: httpx.Request) -> Any:
        seen.append(body_of(req))
        return {"secgroup": {"id": "sg1"}}
    cloud.route("POST", "/secgroups/web/add-rule", add)
    assert cloud.climc("secgroup-add-rule", "web", "in", "tcp", "allow", "10", "--ports", "22").exit_code == 0
    assert cloud.climc("secgroup-add-rule", "web", "--protocol", "udp", "--ports", "53").exit_code == 0
    assert seen[0] == {"direction": "in", "protocol": "tcp", "action": "allow", "priority": 10, "ports": "22"}
    assert seen[1]["protocol"] == "udp" and seen[1]["direction"] == "in"
    r = cloud.climc("secgroup-add-rule", "web", "sideways", "tcp", "allow", "10")
    assert r.exit_code == 2 and "DIRECTION" in r.stderr


def test_storage_create_both_orders_and_sizes() -> None:
    cloud = MockCloud()
    seen = _capture(cloud, "POST", "/storages", "storage")
    assert cloud.climc("storage-create", "st1", "zone0", "--capacity", "2t").exit_code == 0
    assert cloud.climc("storage-create", "zone0", "st2", "500000").exit_code == 0
    assert [(s["zone"], s["name"], s["capacity"]) for s in seen] == [("zone0", "st1", 2 * 1024 * 1024),
                                                                     ("zone0", "st2", 500000)]
    assert cloud.climc("storage-create", "zone0", "st3").exit_code == 2


def test_endpoint_vpc_eip_create_positionals() -> None:
    cloud = MockCloud()
    eps = _capture(cloud, "POST", "/endpoints", "endpoint")
    assert cloud.climc("endpoint-create", "compute", "region0", "public", "http://h/c").exit_code == 0
    assert cloud.climc("endpoint-create", "compute", "internal", "http://h/c", "--region", "r2").exit_code == 0
    assert [(e["service_id"], e.get("region_id"), e["interface"]) for e in eps] == [
        ("compute", "region0", "public"), ("compute", "r2", "internal")]
    vpcs = _capture(cloud, "POST", "/vpcs", "vpc")
    assert cloud.climc("vpc-create", "region0", "v1", "10.0.0.0/16").exit_code == 0
    assert cloud.climc("vpc-create", "v2", "--cidr", "10.1.0.0/16").exit_code == 0
    assert vpcs == [{"name": "v1", "cloudregion": "region0", "cidr_block": "10.0.0.0/16"},
                    {"name": "v2", "cidr_block": "10.1.0.0/16"}]
    eips = _capture(cloud, "POST", "/eips", "eip")
    assert cloud.climc("eip-create", "e1", "--network", "eipnet", "--ip-addr", "10.9.0.5").exit_code == 0
    assert cloud.climc("eip-create", "e2", "eipnet").exit_code == 0
    assert [(e["network"], e.get("ip_addr")) for e in eips] == [("eipnet", "10.9.0.5"), ("eipnet", None)]
    assert cloud.climc("eip-create", "e3").exit_code == 2
