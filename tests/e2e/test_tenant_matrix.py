"""Tenant isolation over every region resource type, with two projects and a reader (issue 21).

Project A's member makes one of each; then, for every type:
- B's member does not see it in the list, and GET / PUT / DELETE of it are 404 (its existence is
  not even confirmed), by id and by name;
- A's reader sees it in the list and GETs it, but PUT / DELETE are 403;
- afterwards nothing changed: A's member still reads it with its name.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.region_agent import TestbedAgent
from tests.e2e.test_identity_support import admin, grant, login, mk_project, mk_user, ok
from tests.e2e.test_security import flat_error, mk_host, region
from tests.support.controller import Controller
from tests.support.subnets import unique_octet

B = "/api/s/compute_v2"
PW = "pw-Matrix-1"


@dataclass
class World:
    member_a: httpx.Client
    reader_a: httpx.Client
    member_b: httpx.Client
    rows: dict[str, dict[str, Any]]  # plural -> the row A's member made


def _wait(fn: Any, what: Any, timeout: float = 90.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = fn()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


@pytest.fixture(scope="module")
def world(controller: Controller) -> Iterator[World]:
    api = admin(controller)
    pa, pb = mk_project(api), mk_project(api)
    um, ur, ub = mk_user(api, PW), mk_user(api, PW), mk_user(api, PW)
    grant(api, f"projects/{pa['id']}", um["id"], "member")
    grant(api, f"projects/{pa['id']}", ur["id"], "reader")
    grant(api, f"projects/{pb['id']}", ub["id"], "member")
    a = region(controller, login(controller, um["name"], PW, {"project": {"id": pa["id"]}}))
    r = region(controller, login(controller, ur["name"], PW, {"project": {"id": pa["id"]}}))
    b = region(controller, login(controller, ub["name"], PW, {"project": {"id": pb["id"]}}))

    tag = uuid.uuid4().hex[:6]
    third = unique_octet()
    ok(controller.api.post(f"{B}/zones", json={"zone": {"name": f"mz-{tag}"}}))
    ok(controller.api.post(f"{B}/wires", json={"wire": {"name": f"mw-{tag}", "zone": f"mz-{tag}"}}))
    ok(controller.api.post(f"{B}/networks", json={"network": {
        "name": f"mn-{tag}", "wire": f"mw-{tag}", "guest_ip_start": f"10.{third}.11.10",
        "guest_ip_end": f"10.{third}.11.40", "guest_ip_mask": 24, "guest_gateway": f"10.{third}.11.1"}}))
    ok(controller.api.post(f"{B}/networks", json={"network": {
        "name": f"me-{tag}", "wire": f"mw-{tag}", "guest_ip_start": f"100.64.{third}.10",
        "guest_ip_end": f"100.64.{third}.20", "guest_ip_mask": 24, "server_type": "eip"}}))
    host = mk_host(controller, {"zone": f"mz-{tag}", "wire": f"mw-{tag}"})
    with TestbedAgent(controller.env, host["id"], host_name=host["name"],
                      wires=({"wire": f"mw-{tag}", "bridge": "br0"},)):
        rows: dict[str, dict[str, Any]] = {}
        rows["secgroups"] = ok(a.post("/secgroups", json={"secgroup": {"name": f"msg-{tag}"}}))["secgroup"]
        rows["secgrouprules"] = ok(a.post("/secgrouprules", json={"secgrouprule": {
            "secgroup_id": rows["secgroups"]["id"], "direction": "in", "protocol": "tcp", "ports": "22",
            "action": "allow", "priority": 10}}))["secgrouprule"]
        rows["eips"] = ok(a.post("/eips", json={"eip": {"name": f"mip-{tag}", "network": f"me-{tag}"}}))["eip"]
        rows["keypairs"] = ok(a.post("/keypairs", json={"keypair": {"name": f"mkp-{tag}"}}))["keypair"]
        srv = ok(a.post("/servers", json={"server": {
            "name": f"ms-{tag}", "vcpu_count": 1, "vmem_size": 256, "disks": ["1g"],
            "nets": [f"mn-{tag}"], "prefer_host": host["id"]}}))["server"]
        sid = srv["id"]
        srv = _wait(lambda: (s := ok(a.get(f"/servers/{sid}"))["server"])["status"] in ("running", "ready")
                    and not s.get("active_task_id") and s, lambda: a.get(f"/servers/{sid}").text)
        rows["servers"] = srv
        disk = ok(a.get("/disks", params={"server": srv["id"]}))["disks"][0]
        rows["disks"] = disk
        task = ok(a.get("/tasks", params={"obj_id": srv["id"], "limit": 1}))["tasks"][0]
        rows["tasks"] = task
        yield World(a, r, b, rows)
        ok(a.delete(f"/servers/{srv['id']}", params={"override_pending_delete": "true"}))
        _wait(lambda: a.get(f"/servers/{sid}").status_code == 404, "the server's deletion")
    for c in (a, r, b):
        c.close()
    api.close()


TYPES = ["servers", "disks", "secgroups", "secgrouprules", "eips", "keypairs", "tasks"]
SINGULAR = {"servers": "server", "disks": "disk", "secgroups": "secgroup", "secgrouprules": "secgrouprule",
            "eips": "eip", "keypairs": "keypair", "tasks": "task"}
WRITABLE = {"servers", "disks", "secgroups", "secgrouprules", "eips", "keypairs"}  # tasks: read-only records


def _ids(c: httpx.Client, plural: str) -> set[str]:
    return {x["id"] for x in ok(c.get(f"/{plural}", params={"limit": 2048}))[plural]}


@pytest.mark.parametrize("plural", TYPES)
def test_another_projects_member_neither_sees_nor_touches_it(world: World, plural: str) -> None:
    row = world.rows[plural]
    one = SINGULAR[plural]
    assert row["id"] not in _ids(world.member_b, plural)
    # a widened scope does not help a member
    assert row["id"] not in {x["id"] for x in ok(world.member_b.get(
        f"/{plural}", params={"limit": 2048, "scope": "system"}))[plural]}
    refs = [row["id"]] + ([row["name"]] if row.get("name") and plural != "tasks" else [])
    for ref in refs:
        flat_error(world.member_b.get(f"/{plural}/{ref}"), 404)
        if plural in WRITABLE:
            flat_error(world.member_b.put(f"/{plural}/{ref}", json={one: {"description": "mine now"}}), 404)
            flat_error(world.member_b.delete(f"/{plural}/{ref}"), 404)
    after = ok(world.member_a.get(f"/{plural}/{row['id']}"))[one]
    assert after.get("description", "") != "mine now"
    assert after.get("name") == row.get("name")


@pytest.mark.parametrize("plural", [t for t in TYPES if t != "keypairs"])
def test_the_projects_reader_sees_it_but_changes_nothing(world: World, plural: str) -> None:
    row = world.rows[plural]
    one = SINGULAR[plural]
    assert row["id"] in _ids(world.reader_a, plural)
    assert ok(world.reader_a.get(f"/{plural}/{row['id']}"))[one]["id"] == row["id"]
    if plural in WRITABLE:
        flat_error(world.reader_a.put(f"/{plural}/{row['id']}", json={one: {"description": "reader was here"}}), 403)
        flat_error(world.reader_a.delete(f"/{plural}/{row['id']}"), 403)
    after = ok(world.member_a.get(f"/{plural}/{row['id']}"))[one]
    assert after.get("description", "") != "reader was here"
    assert after["id"] == row["id"]
