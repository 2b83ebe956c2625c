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


def test_image_show_and_update_take_several_images() -> None:
    cloud = MockCloud()
    cloud.route("GET", r".*/images/(a|b)", lambda req: {"image": {"id": req.url.path.rsplit("/", 1)[1]}})
    puts: list[tuple[str, Any]] = []

    def put(req: httpx.Request) -> Any:
        puts.append((req.url.path.rsplit("/", 1)[1], body_of(req)["image"]))
        return {"image": {"id": "x"}}
    cloud.route("PUT", r".*/images/(a|b)", put)
    r = cloud.climc("image-show", "a", "b", "--output-format", "json")
    assert r.exit_code == 0 and '"a"' in r.stdout and '"b"' in r.stdout, r.output
    assert cloud.climc("image-update", "a", "b", "--min-disk", "10").exit_code == 0
    assert puts == [("a", {"min_disk": 10}), ("b", {"min_disk": 10})]
    r = cloud.climc("image-show", "a", "nope")  # one missing: the other is still shown, exit non-zero
    assert r.exit_code != 0 and "nope" in r.stderr
    assert cloud.climc("image-update", "a", "b", "--name", "n").exit_code == 2


def test_host_ipmi_probe_takes_several_hosts_and_host_create_a_mac() -> None:
    cloud = MockCloud()
    cloud.route("POST", r"/hosts/h\d/ipmi-probe", lambda req: {"host": {"id": "h"}})
    assert cloud.climc("host-ipmi-probe", "h1", "h2").exit_code == 0
    assert [c for c in cloud.calls if c[0] == "POST"][-2:] == [("POST", "/hosts/h1/ipmi-probe"),
                                                               ("POST", "/hosts/h2/ipmi-probe")]
    hosts = _capture(cloud, "POST", "/hosts", "host")
    assert cloud.climc("host-create", "bm1", "52:54:00:12:34:56", "--zone", "z", "--ipmi-addr", "10.0.0.9",
                       "--ipmi-user", "root", "--ipmi-passwd", "pw").exit_code == 0
    assert hosts[0]["access_mac"] == "52:54:00:12:34:56" and hosts[0]["driver"] == "baremetal"
    assert hosts[0]["driver_config"]["access_mac"] == "52:54:00:12:34:56"
    assert cloud.climc("host-create", "bm2", "52:54:00:12:34:56", "--access-mac", "52:54:00:00:00:01",
                       "--zone", "z").exit_code == 2


def test_server_attach_several_networks_and_create_several_disks_one_after_another() -> None:
    cloud = MockCloud()
    sent: list[Any] = []

    def act(req: httpx.Request) -> Any:
        sent.append(body_of(req))
        return {"server": {"id": "vm1", "status": "ready", "active_task_id": f"t{len(sent)}"}}
    cloud.route("POST", "/servers/vm1/(attachnetwork|createdisk)", act)
    cloud.route("GET", r"/tasks/t\d", lambda req: {"task": {"id": "t", "status": "done", "stage": "complete"}})
    cloud.route("GET", "/tasks", {"tasks": [], "total": 0})
    cloud.route("GET", "/servers/vm1", {"server": {"id": "vm1", "status": "ready"}})
    assert cloud.climc("server-attach-network", "vm1", "net1", "net2:10.0.0.5").exit_code == 0
    assert sent == [{"network": "net1"}, {"network": "net2:10.0.0.5"}]
    # the first attach's task was followed before the second was sent
    posts = [i for i, c in enumerate(cloud.calls) if c[0] == "POST" and "attachnetwork" in c[1]]
    assert any(c == ("GET", "/tasks/t1") for c in cloud.calls[posts[0]:posts[1]])
    sent.clear()
    assert cloud.climc("server-create-disk", "vm1", "10g", "img1:20g", "--wait").exit_code == 0
    assert sent == [{"disks": ["10g"]}, {"disks": ["img1:20g"]}]
    sent.clear()
    assert cloud.climc("server-attach-network", "vm1", "net1").exit_code == 0 and len(sent) == 1


def test_server_detach_network_by_mac_or_ip() -> None:
    cloud = MockCloud()
    sent: list[Any] = []

    def act(req: httpx.Request) -> Any:
        sent.append(body_of(req))
        return {"server": {"id": "vm1"}}
    cloud.route("POST", "/servers/vm1/detachnetwork", act)
    assert cloud.climc("server-detach-network", "vm1", "52-54-00-AA-BB-CC").exit_code == 0
    assert cloud.climc("server-detach-network", "vm1", "10.0.0.5").exit_code == 0
    assert cloud.climc("server-detach-network", "vm1", "--net", "net1").exit_code == 0
    assert sent == [{"mac": "52:54:00:aa:bb:cc"}, {"ip_addr": "10.0.0.5"}, {"network": "net1"}]
    r = cloud.climc("server-detach-network", "vm1", "eth0")
    assert r.exit_code == 2 and "neither a MAC" in r.stderr


def test_disk_save_takes_cloudpods_ostype() -> None:
    cloud = MockCloud()
    sent: list[Any] = []

    def save(req: httpx.Request) -> Any:
        sent.append(body_of(req))
        return {"disk": {"id": "d1", "image_name": "img"}}
    cloud.route("POST", "/disks/d1/save", save)
    assert cloud.climc("disk-save", "d1", "img", "Linux").exit_code == 0
    assert cloud.climc("disk-save", "d1", "img").exit_code == 0
    assert sent == [{"name": "img", "os_type": "Linux"}, {"name": "img"}]


def test_secgroup_rule_create_takes_cloudpods_rule_strings_the_server_accepts() -> None:
    from core.region.managers.misc import RuleIn

    cloud = MockCloud()
    seen = _capture(cloud, "POST", "/secgrouprules", "secgrouprule")
    for text in ("in:allow tcp 22", "out:deny 10.0.0.0/8 any", "in:allow 192.168.1.5 udp 53,123",
                 "in:allow tcp 80-443", "in:deny icmp", "out:allow tcp"):
        r = cloud.climc("secgroup-rule-create", "web", text, "--priority", "5")
        assert r.exit_code == 0, (text, r.output)
    assert [{k: v for k, v in s.items() if k not in ("secgroup_id", "priority")} for s in seen] == [
        {"direction": "in", "action": "allow", "protocol": "tcp", "ports": "22"},
        {"direction": "out", "action": "deny", "cidr": "10.0.0.0/8", "protocol": "any"},
        {"direction": "in", "action": "allow", "cidr": "192.168.1.5", "protocol": "udp", "ports": "53,123"},
        {"direction": "in", "action": "allow", "protocol": "tcp", "ports": "80-443"},
        {"direction": "in", "action": "deny", "protocol": "icmp"},
        {"direction": "out", "action": "allow", "protocol": "tcp"}]
    assert all(s["secgroup_id"] == "web" and s["priority"] == 5 for s in seen)
    for s in seen:  # what the rule strings send, the server's rule model takes as it is
        assert RuleIn.model_validate(s).model_dump(include=set(s) - {"secgroup_id"}) == \
            {k: v for k, v in s.items() if k != "secgroup_id"}
    # ours keeps working; bad rule strings are one line naming the grammar, nothing sent
    assert cloud.climc("secgroup-rule-create", "web", "--protocol", "tcp", "--ports", "22").exit_code == 0
    assert seen[-1]["protocol"] == "tcp" and seen[-1]["direction"] == "in"
    n = len(seen)
    for bad, says in (("allow tcp 22", "in: or out:"), ("in:permit tcp", "allow or deny"),
                      ("in:allow sctp 1", "protocol"), ("in:allow icmp 8", "not part of a rule"),
                      ("in:allow", "protocol")):
        r = cloud.climc("secgroup-rule-create", "web", bad)
        assert r.exit_code == 2 and says in r.stderr and "RULE" in r.stderr, (bad, r.stderr)
    assert cloud.climc("secgroup-rule-create", "web", "in:allow tcp 22", "--ports", "80").exit_code == 2
    assert len(seen) == n


def test_image_list_sends_cloudpods_tag_and_field_options() -> None:
    cloud = MockCloud()
    seen: list[httpx.QueryParams] = []

    def listing(req: httpx.Request) -> Any:
        seen.append(req.url.params)
        return {"images": [{"id": "i1", "name": "a", "status": "active"}], "total": 1}
    cloud.route("GET", r".*/images", listing)
    r = cloud.climc("image-list", "--tags", "os_type=Linux;gpu", "--user-tags", "team=x", "--no-tags", "old",
                    "--field", "id", "--field", "name", "--system")
    assert r.exit_code == 0, r.output
    q = seen[0]
    assert (q["tags.0.key"], q["tags.0.value"], q["tags.1.key"], q["tags.2.key"], q["tags.2.value"]) == (
        "os_type", "Linux", "gpu", "user:team", "x")
    assert "tags.1.value" not in q and q["no_tags.0.key"] == "old" and q.get_list("field") == ["id", "name"]
    assert "system" not in q and "| id | name |" in r.stdout and "status" not in r.stdout  # the fields asked for
