"""Cloudpods' common list options on every ``*-list``: --project/--tenant, --admin, --status (repeatable),
--scope user|max, --tags/--user-tags/--no-tags (the server filters on metadata)."""
from __future__ import annotations

import json
import uuid

from tests.e2e.test_agent_support import wait_for
from tests.support.controller import Controller
from tests.support.subnets import unique_octet


def _names(controller: Controller, *args: str) -> set[str]:
    r = controller.climc("server-list", "--limit", "100", "-o", "json", *args)
    assert r.returncode == 0, r.stderr
    return {s["name"] for s in json.loads(r.stdout)["data"]}


def test_list_options_filter_as_cloudpods_climc(controller: Controller, cirros_image: dict[str, object]) -> None:
    tag = uuid.uuid4().hex[:6]
    # rows that exist without a host: a create that cannot be scheduled keeps them (sched_fail). Its own
    # empty zone: whatever hosts other tests registered on the shared controller, none can take them
    assert controller.climc("zone-create", f"lo{tag}").returncode == 0
    r = controller.climc("server-create", f"lo{tag}", "--ncpu", "40", "--disk", "cirros", "--count", "3",
                         "--zone", f"lo{tag}", "-o", "json")
    assert r.returncode == 0, r.stderr
    names = sorted(_names(controller, "--search", f"lo{tag}"))
    assert len(names) == 3
    a, b, c = names
    assert controller.climc("server-set-metadata", a, "env=prod", "team=web").returncode == 0
    assert controller.climc("server-set-metadata", b, "env=dev").returncode == 0
    assert controller.climc("server-add-user-metadata", c, "owner=alice").returncode == 0
    s = ("--search", f"lo{tag}")
    assert _names(controller, *s, "--tags", "env=prod") == {a}
    assert _names(controller, *s, "--tags", "env=prod", "--tags", "env=dev") == {a, b}  # one key: any value
    assert _names(controller, *s, "--tags", "env;team") == {a}  # bare keys: present
    assert _names(controller, *s, "--no-tags", "env") == {c}
    assert _names(controller, *s, "--user-tags", "owner=alice") == {c}
    # status (repeatable), scope user|max, --admin, --project/--tenant; the scheduler's verdict may still be
    # queued behind other tests' tasks on a loaded machine: wait for it
    wait_for(lambda: _names(controller, *s, "--status", "sched_fail") == {a, b, c}, 60, "sched_fail")
    assert _names(controller, *s, "--status", "sched_fail", "--status", "running") == {a, b, c}
    assert _names(controller, *s, "--status", "running") == set()
    for extra in (("--scope", "max"), ("--scope", "user"), ("--admin",), ("--system",), ("--project", "system"),
                  ("--tenant", "system")):
        assert _names(controller, *s, *extra) == {a, b, c}, extra
    r = controller.climc("project-create", f"other{tag}")
    assert r.returncode == 0, r.stderr
    assert _names(controller, *s, "--tenant", f"other{tag}") == set()
    # every region list takes them
    for cmd in ("network-list", "host-list", "disk-list", "zone-list", "task-list"):
        r = controller.climc(cmd, "--admin", "--status", "x", "--tags", "k=v", "--scope", "max", "--project", "system")
        assert r.returncode == 0, (cmd, r.stderr)


def test_image_list_takes_cloudpods_names(controller: Controller, cirros_image: dict[str, object]) -> None:
    r = controller.climc("image-list", "--name", "cirros", "--format", "raw", "--admin", "--scope", "max", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert [i["name"] for i in json.loads(r.stdout)["data"]] == ["cirros"]
    r = controller.climc("image-list", "--name", "no-such-image", "-o", "json")
    assert json.loads(r.stdout)["data"] == []


def test_network_create_and_update_take_every_mask_form(controller: Controller) -> None:
    tag = uuid.uuid4().hex[:6]
    third = unique_octet()
    r = controller.climc("network-create", "default", f"nm{tag}", f"10.{third}.77.10", f"10.{third}.77.20",
                         "255.255.255.0", "--vlan-id", "7", "-o", "json")
    assert r.returncode == 0, r.stderr
    net = json.loads(r.stdout)
    assert net["guest_ip_mask"] == 24 and net["vlan_id"] == 7
    r = controller.climc("network-update", f"nm{tag}", "--netmask", "/23", "--start-ip", f"10.{third}.77.11",
                         "--gateway", f"10.{third}.77.1", "--dns", "1.1.1.1", "-o", "json")
    assert r.returncode == 0, r.stderr
    net = json.loads(r.stdout)
    assert (net["guest_ip_mask"], net["guest_ip_start"], net["guest_gateway"], net["guest_dns"]) == (
        23, f"10.{third}.77.11", f"10.{third}.77.1", "1.1.1.1")
    r = controller.climc("network-create", "default", f"bad{tag}", "10.9.9.1", "10.9.9.9", "255.0.255.0")
    assert r.returncode == 2 and "not a netmask" in r.stderr


def test_identity_lists_take_cloudpods_list_options(controller: Controller) -> None:
    """user/group/project/domain/endpoint-list accept the same options; --project keeps users and
    groups holding a role there, --tags matches no identity row (none carries tags), --field picks."""
    from tests.e2e.test_identity_support import admin, grant, mk_project, mk_user, ok

    tag = uuid.uuid4().hex[:6]
    with admin(controller) as a:
        proj = mk_project(a, name=f"lp{tag}")
        user = mk_user(a, name=f"lu{tag}")
        mk_user(a, name=f"lx{tag}")  # no role on the project
        grp = ok(a.post("/groups", json={"group": {"name": f"lg{tag}", "domain_id": "default"}}), 201)["group"]
        grant(a, f"projects/{proj['id']}", user["id"], "member")
        ok(a.put(f"/projects/{proj['id']}/groups/{grp['id']}/roles/reader"), 204)

    def rows(*args: str) -> list[dict[str, object]]:
        r = controller.climc(*args, "--limit", "0", "-o", "json")
        assert r.returncode == 0, r.stderr
        return list(json.loads(r.stdout)["data"])

    assert {u["name"] for u in rows("user-list", "--search", tag, "--project", proj["name"])} == {f"lu{tag}"}
    assert {g["name"] for g in rows("group-list", "--tenant", proj["id"])} == {f"lg{tag}"}
    assert [p["name"] for p in rows("project-list", "--project", proj["name"])] == [f"lp{tag}"]
    assert [d["id"] for d in rows("domain-list", "--project", proj["name"])] == ["default"]
    assert rows("user-list", "--search", tag, "--tags", "env=prod") == []
    assert len(rows("user-list", "--search", tag, "--no-tags", "env", "--admin", "--system")) == 2
    assert rows("user-list", "--search", f"lu{tag}", "--field", "name") == [{"name": f"lu{tag}"}]
    assert {p["name"] for p in rows("project-list", "--project-domain", "Default", "--search", tag)} == {f"lp{tag}"}
    r = controller.climc("endpoint-list", "--project", proj["name"])
    assert r.returncode != 0 and "no project" in r.stderr, r.stderr
