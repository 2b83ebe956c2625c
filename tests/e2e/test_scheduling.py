"""Scheduling explains itself: forecast before a create, and the reason kept on a failed server."""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from tests.support.controller import Controller
from tests.support.subnets import unique_octet
from tests.support.waiting import wait_for

B = "/api/s/compute_v2"


@pytest.fixture
def small_zone(controller: Controller, cirros_image: dict[str, object]) -> Iterator[dict[str, str]]:
    """A zone with two 4-cpu / 8 GB hosts on one wire and network."""
    tag = uuid.uuid4().hex[:6]
    names = {"zone": f"sz-{tag}", "wire": f"sw-{tag}", "net": f"sn-{tag}", "tag": tag}
    assert controller.climc("zone-create", names["zone"]).returncode == 0
    assert controller.climc("wire-create", names["zone"], names["wire"], "1000").returncode == 0
    third = unique_octet()
    r = controller.climc("network-create", names["wire"], names["net"], f"10.{third}.9.10", f"10.{third}.9.200",
                         "24", "--gateway", f"10.{third}.9.1")
    assert r.returncode == 0, r.stderr
    for i in range(2):
        h = controller.api.post(f"{B}/zones/{names['zone']}/hosts", json={"host": {
            "name": f"sh{i}-{tag}", "access_mac": f"00:16:3e:{tag[:2]}:{tag[2:4]}:{i:02x}", "cpu_count": 4,
            "cpu_cmtbound": 1.0, "mem_size": 8192, "mem_reserved": 0,
            "storages": [{"name": f"sh{i}-{tag}-local", "capacity": 500_000}],
            "wires": [{"wire": names["wire"], "bridge": "br0"}]}})
        assert h.status_code == 200, h.text
    yield names


def test_dry_run_says_how_many_fit_and_why(controller: Controller, small_zone: dict[str, str]) -> None:
    args = ["--ncpu", "4", "--mem-spec", "1g", "--disk", "cirros:10g", "--net", small_zone["net"],
            "--zone", small_zone["zone"]]
    # a name no other test's server can contain (a random tag such as "fd1fcb" holds "fc")
    fc_name = f"fcast-{small_zone['tag']}"
    r = controller.climc("server-create", fc_name, *args, "--count", "3", "--dry-run", "-o", "json")
    assert r.returncode == 0, r.stderr
    fc = json.loads(r.stdout)
    assert fc["can_create"] is False and fc["allow_count"] == 2 and fc["req_count"] == 3
    r = controller.climc("scheduler-forecast", fc_name, *args, "--count", "2")
    assert r.returncode == 0, r.stderr
    assert "Can create: yes (2 of 2 fit)" in r.stdout
    r = controller.climc("scheduler-forecast", fc_name, "--ncpu", "64", "--disk", "cirros", "--net", small_zone["net"],
                         "--zone", small_zone["zone"])
    assert "Can create: NO" in r.stdout and "cpu" in r.stdout.lower()
    # a forecast writes nothing
    names = controller.climc("server-list", "--search", fc_name, "-o", "json", "--scope", "system")
    assert json.loads(names.stdout)["data"] == []


def test_failed_schedule_keeps_its_explanation(controller: Controller, small_zone: dict[str, str]) -> None:
    name = f"toobig-{small_zone['tag']}"
    r = controller.climc("server-create", name, "--ncpu", "32", "--disk", "cirros", "--net", small_zone["net"],
                         "--zone", small_zone["zone"], "-o", "json")
    assert r.returncode == 0, r.stderr
    # the scheduler's verdict may be queued behind other tests' tasks on a loaded machine (it had 10 s)
    s = wait_for(lambda: (x := controller.api.get(f"{B}/servers/{name}").json()["server"])["status"] == "sched_fail"
                 and x, 60, "sched_fail")
    assert "cpu" in s["fail_reason"].lower()
    r = controller.climc("server-show", name)
    assert "fail_reason" in r.stdout


def test_forecast_bad_input_is_400(controller: Controller) -> None:
    r = controller.api.post(f"{B}/servers/forecast", json={"server": {"name": "x", "vcpu_count": 0}})
    assert r.status_code == 400 and r.json()["class"] == "InputParameterError"
    r = controller.api.post(f"{B}/servers/forecast", json={"server": {"name": "x"}, "count": "many"})
    assert r.status_code == 400
