"""Security groups end to end (issue 16): a project's Default group made on demand, servers in
several groups (create, add, revoke, set), rules with priorities/cidr/peer groups, what a host is
told to enforce (and how fast it is told), bad input, another project, the audit trail.

Real packets through nftables are tests/integration/test_secgroups_nft.py (root)."""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.region_agent import TestbedAgent
from tests.e2e.test_security import Tenants, flat_error, tenants  # noqa: F401  (fixture)
from tests.e2e.test_servers import agent_for, host_infra, infra, srv, wait_for  # noqa: F401  (fixture)
from tests.support.controller import Controller
from tests.support.subnets import unique_octet

B = "/api/s/compute_v2"


def cj(controller: Controller, *args: str) -> Any:
    r = controller.climc(*args, "-o", "json")
    assert r.returncode == 0, f"climc {' '.join(args)}: {r.stdout}{r.stderr}"
    return json.loads(r.stdout)


def names(server: dict[str, Any]) -> list[str]:
    return [g["name"] for g in server["secgroups"]]


@pytest.fixture(scope="module")
def running(controller: Controller, infra: dict[str, str]) -> Iterator[tuple[TestbedAgent, dict[str, str]]]:  # noqa: F811
    """The infra's host served by the real agent (test:///): it pulls its security groups."""
    with agent_for(controller, infra) as agent:
        yield agent, infra


def host_rules(controller: Controller, host_id: str) -> dict[str, Any]:
    r = controller.api.get(f"{B}/agent/hosts/{host_id}/secgroups")
    assert r.status_code == 200, r.text
    return r.json()["secgroups"]  # type: ignore[no-any-return]


def quiet_host(controller: Controller, tag: str) -> dict[str, str]:
    """A zone, wire, network and host of the test's own that no agent serves."""
    n = {"zone": f"zq-{tag}", "wire": f"wq-{tag}", "net": f"nq-{tag}", "host": f"hq-{tag}"}
    return host_infra(controller, n, tag, oui="00:16:3f", cpus=4, mem_mb=8192, storage_mb=100_000)


def mk_server(controller: Controller, infra: dict[str, str], name: str, *extra: str) -> dict[str, Any]:  # noqa: F811
    out = cj(controller, "server-create", name, "--ncpu", "1", "--mem-spec", "64m", "--disk", "cirros",
             "--net", infra["net"], "--host", infra["host"], *extra)
    sid = out["id"] if "id" in out else out[0]["id"]
    s = wait_for(lambda: (x := srv(controller, sid))["status"] in ("running", "ready") or
                 x["status"].endswith("fail") and x, 60, lambda: srv(controller, sid)["status"])
    assert s is True or s["status"] in ("running", "ready"), (s["status"], s.get("fail_reason"))
    return srv(controller, sid)


def test_default_group_multiple_groups_and_the_verbs(controller: Controller,
                                                     running: tuple[TestbedAgent, dict[str, str]]) -> None:
    agent, net = running
    tag = uuid.uuid4().hex[:6]
    # no group asked for: the project's Default, made on first use, as Cloudpods makes it
    s = mk_server(controller, net, f"sg-plain-{tag}")
    assert names(s) == ["Default"]
    default = cj(controller, "secgroup-show", s["secgroups"][0]["id"])
    rules = {(r["direction"], r["action"], r["protocol"], r["peer_secgroup_id"]) for r in default["rules"]}
    assert rules == {("in", "allow", "any", default["id"]), ("out", "allow", "any", None)}
    web, db, ops = (f"sg-{w}-{tag}" for w in ("web", "db", "ops"))
    for g in (web, db, ops):
        cj(controller, "secgroup-create", g)
    s2 = mk_server(controller, net, f"sg-two-{tag}", "--secgroup", web, "--secgroup", db)
    assert names(s2) == [web, db]
    assert names(cj(controller, "server-add-secgroup", s2["id"], ops)) == [web, db, ops]
    assert names(cj(controller, "server-revoke-secgroup", s2["id"], web)) == [db, ops]
    assert names(cj(controller, "server-set-secgroup", s2["id"], web)) == [web]
    # refusals: one readable line, nothing changed
    for args, fragment in ((("server-revoke-secgroup", s2["id"], web), "at least one security group"),
                           (("server-revoke-secgroup", s2["id"], db), "is not in security group"),
                           (("server-add-secgroup", s2["id"], f"nope-{tag}"), f"nope-{tag}"),
                           (("server-add-secgroup", s2["id"], web), "already in")):
        r = controller.climc(*args)
        assert r.returncode != 0 and fragment in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = controller.api.post(f"{B}/servers/{s2['id']}/set-secgroup",
                            json={"secgroup_ids": [web, db, ops, "Default", f"sg-plain-{tag}", "x", "y"]})
    assert r.status_code == 400
    assert names(srv(controller, s2["id"])) == [web]
    # a group in use cannot go; the audit trail names every change
    r = controller.climc("secgroup-delete", web)
    assert r.returncode != 0 and "used by servers" in r.stderr
    acts = controller.api.get("/api/s/identity/v3/actions", params={"obj_type": "server", "limit": 0}).json()["actions"]
    done = {a["action"] for a in acts if a["obj_id"] == s2["id"]}
    assert {"add-secgroup", "revoke-secgroup", "set-secgroup"} <= done, done
    # the host is told: its ports carry the groups' rules, Default's peer rule as the group's addresses
    spec = host_rules(controller, net["host_id"])
    ports = {p["server_id"]: p for p in spec["ports"]}
    assert ports[s["id"]]["enforce"] and ports[s["id"]]["src_ip_check"] and ports[s["id"]]["src_mac_check"]
    peer_in = [r for r in ports[s["id"]]["rules"] if r["direction"] == "in"]
    assert peer_in and peer_in[0]["peer"] == default["id"] and not peer_in[0]["matches_nothing"]
    assert s["nics"][0]["ip_addr"] in spec["peers"][default["id"]]
    # the agent on test:/// says plainly that it does not enforce, and why
    st = agent.agent.firewall.status() if agent.agent else {}
    assert st["enforcing"] is False and "network_mode none" in st["reason"]
    # ... and so does the host as the region shows it
    shown = wait_for(lambda: (h := cj(controller, "host-show", net["host_id"])).get("secgroup_status") and h, 60)
    assert shown["secgroup_enforcing"] is False and "not enforced" in shown["secgroup_status"]


def test_rules_reach_the_host_within_a_second(controller: Controller,
                                              running: tuple[TestbedAgent, dict[str, str]]) -> None:
    agent, net = running
    tag = uuid.uuid4().hex[:6]
    g = f"sg-fast-{tag}"
    cj(controller, "secgroup-create", g)
    s = mk_server(controller, net, f"sg-fast-{tag}", "--secgroup", g)
    # the poll protocol is watched on a host of the test's own that no agent serves: a raw poll of the
    # agent's host would take work items meant for the agent
    quiet = quiet_host(controller, tag)
    q = cj(controller, "server-create", f"sg-quiet-{tag}", "--ncpu", "1", "--mem-spec", "64m", "--disk", "cirros",
           "--net", quiet["net"], "--host", quiet["host"], "--secgroup", g)
    qid = q["id"] if "id" in q else q["data"][0]["id"]
    wait_for(lambda: srv(controller, qid)["host"] == quiet["host"], 60, lambda: srv(controller, qid)["status"])
    # its deploy is taken and acknowledged here (no agent will run it), so the long poll below waits
    taken = wait_for(lambda: controller.api.get(f"{B}/agent/hosts/{quiet['host_id']}/work-items",
                                                params={"wait": 0}).json()["work_items"], 60)
    r = controller.api.post(f"{B}/agent/hosts/{quiet['host_id']}/work-items/ack",
                            json={"ids": [wi["id"] for wi in taken]})
    assert r.status_code == 200, r.text
    before = host_rules(controller, net["host_id"])["version"]
    quiet_before = host_rules(controller, quiet["host_id"])["version"]
    # a long poll that passes the version it saw returns as soon as the host's rules move, not at its end
    poll: dict[str, Any] = {}

    def long_poll() -> None:
        t = time.monotonic()
        poll["answer"] = controller.api.get(f"{B}/agent/hosts/{quiet['host_id']}/work-items", params={
            "wait": 60, "secgroup_version": quiet_before, "with_secgroups": 1}, timeout=90).json()
        poll["took"] = time.monotonic() - t

    poller = threading.Thread(target=long_poll, daemon=True)
    poller.start()
    time.sleep(0.5)  # let the poll start waiting (if it has not, it simply sees the change at once)
    rule = cj(controller, "secgroup-rule-create", g, "--protocol", "tcp", "--ports", "22,80-443",
              "--cidr", "10.1.0.0/16", "--priority", "50")
    t0 = time.monotonic()  # from the API's answer: a climc process's own start on a loaded box is not the path
    spec = host_rules(controller, net["host_id"])
    assert spec["version"] > before
    mine = next(p for p in spec["ports"] if p["server_id"] == s["id"])
    assert [(r["protocol"], r["ports"], r["cidrs"], r["priority"]) for r in mine["rules"]] == \
        [("tcp", "22,80-443", ["10.1.0.0/16"], 50)]
    assert agent.agent is not None
    # the real agent applies it (its own long poll is 2 s here, so this bounds the whole path, not the
    # wake-up, which the quiet host's poll proves; the 1 s promise is measured by bench/secgroup.py)
    wait_for(lambda: (agent.agent.firewall.applied_version or 0) >= spec["version"], 60,
             lambda: agent.agent.firewall.status())
    took = time.monotonic() - t0
    assert took < 15, took  # generous for a loaded CI box (load ~30 on 2 cores seen); typical well under 1 s
    poller.join(90)
    # the poll that sees the version move returns early (60 s asked, the most; it also waits out the climc
    # process that makes the change, whose start alone takes seconds on a loaded box: 15 s of room)
    # and carries the rules (one round trip)
    print(f"rule change -> agent applied: {took * 1000:.0f} ms; quiet host's long poll woke after "
          f"{poll.get('took', -1) * 1000:.0f} ms")
    assert poll.get("took", 99) < 45, poll
    polled = poll["answer"]
    assert polled["secgroups"]["version"] == polled["secgroup_version"] > quiet_before
    quiet_port = next(p for p in polled["secgroups"]["ports"] if p["server_id"] == qid)
    assert [(r["protocol"], r["ports"]) for r in quiet_port["rules"]] == [("tcp", "22,80-443")]
    # not asked for the rules, it does not carry them
    assert "secgroups" not in controller.api.get(f"{B}/agent/hosts/{quiet['host_id']}/work-items", params={
        "wait": 0, "secgroup_version": quiet_before}).json()
    # priorities: the larger first, deny before allow at the same priority
    cj(controller, "secgroup-rule-create", g, "--action", "deny", "--protocol", "icmp", "--priority", "50")
    cj(controller, "secgroup-rule-create", g, "--direction", "out", "--priority", "100")
    rules = next(p for p in host_rules(controller, net["host_id"])["ports"] if p["server_id"] == s["id"])["rules"]
    assert [(r["direction"], r["action"], r["priority"]) for r in rules] == \
        [("out", "allow", 100), ("in", "deny", 50), ("in", "allow", 50)]
    upd = cj(controller, "secgroup-rule-update", rule["id"], "--ports", "8080")
    assert upd["ports"] == "8080" and upd["protocol"] == "tcp"
    assert controller.climc("secgroup-rule-delete", rule["id"]).returncode == 0
    listed = cj(controller, "secgroup-rule-list", "--secgroup", g)["data"]
    assert sorted((r["action"], r["direction"]) for r in listed) == [("allow", "out"), ("deny", "in")]
    # a server in no group at all (an old row) is not enforced; its anti-spoofing still is
    r = controller.api.put(f"{B}/servers/{s['id']}", json={"server": {"src_ip_check": False}})
    assert r.status_code == 200 and r.json()["server"]["src_ip_check"] is False
    mine = next(p for p in host_rules(controller, net["host_id"])["ports"] if p["server_id"] == s["id"])
    assert mine["src_ip_check"] is False and mine["src_mac_check"] is True


@pytest.mark.parametrize(("opts", "fragment"), [
    (("--protocol", "icmp", "--ports", "22"), "only tcp and udp"),
    (("--protocol", "tcp", "--ports", "70000"), "ports"),
    (("--cidr", "fe80::/64"), "IPv4"),
    (("--cidr", "10.0.0.0/33"), "CIDR"),
    (("--priority", "101"), "101"),
    (("--cidr", "10.0.0.0/8", "--peer-secgroup", "SELF"), "not both"),  # SELF: the test's own group
    (("--peer-secgroup", "no-such-group"), "no-such-group"),
])
def test_bad_rules_are_refused(controller: Controller, opts: tuple[str, ...], fragment: str) -> None:
    g = f"sg-bad-{uuid.uuid4().hex[:6]}"
    cj(controller, "secgroup-create", g)
    # never a shared name such as Default: several projects' Default groups make it ambiguous, and
    # whether it exists depends on which tests ran before
    r = controller.climc("secgroup-rule-create", g, *(g if o == "SELF" else o for o in opts))
    assert r.returncode != 0 and fragment in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert cj(controller, "secgroup-show", g)["rules"] == []


def test_another_project_cannot_touch_these_groups(controller: Controller, tenants: Tenants,  # noqa: F811
                                                   running: tuple[TestbedAgent, dict[str, str]]) -> None:
    _, net = running
    tag = uuid.uuid4().hex[:6]
    g = cj(controller, "secgroup-create", f"sg-mine-{tag}")
    rule = cj(controller, "secgroup-rule-create", g["id"], "--protocol", "tcp", "--ports", "22")
    s = mk_server(controller, net, f"sg-mine-{tag}", "--secgroup", g["id"])
    b: httpx.Client = tenants.b
    flat_error(b.get(f"/secgroups/{g['id']}"), 404)
    flat_error(b.put(f"/secgroups/{g['id']}", json={"secgroup": {"name": f"sg-taken-{tag}"}}), 404)
    flat_error(b.get(f"/secgrouprules/{rule['id']}"), 404)
    flat_error(b.put(f"/secgrouprules/{rule['id']}", json={"secgrouprule": {"ports": "1-65535"}}), 404)
    flat_error(b.delete(f"/secgrouprules/{rule['id']}"), 404)
    flat_error(b.post("/secgrouprules", json={"secgrouprule": {"secgroup_id": g["id"], "protocol": "any"}}), 400)
    flat_error(b.post(f"/servers/{s['id']}/add-secgroup", json={"secgroup_ids": ["Default"]}), 404)
    flat_error(b.post(f"/servers/{s['id']}/set-secgroup", json={"secgroup_ids": [g["id"]]}), 404)
    # nor name this project's group as a peer of its own
    own = b.post("/secgroups", json={"secgroup": {"name": f"sg-b-{tag}"}})
    assert own.status_code == 200, own.text
    flat_error(b.post(f"/secgroups/{own.json()['secgroup']['id']}/add-rule",
                      json={"peer_secgroup_id": g["id"]}), 400)
    assert b.get("/secgrouprules", params={"limit": 0}).json()["secgrouprules"] == [] or all(
        r["secgroup_id"] != g["id"] for r in b.get("/secgrouprules", params={"limit": 0}).json()["secgrouprules"])
    # nothing changed; its owner renames it (Cloudpods' secgroup-update)
    assert [r["ports"] for r in cj(controller, "secgroup-show", g["id"])["rules"]] == ["22"]
    assert names(srv(controller, s["id"])) == [g["name"]]
    out = cj(controller, "secgroup-update", g["id"], "--name", f"sg-ours-{tag}", "--desc", "renamed")
    assert (out["name"], out["description"]) == (f"sg-ours-{tag}", "renamed")
    assert names(srv(controller, s["id"])) == [f"sg-ours-{tag}"]


def test_eips_associate_with_servers_and_reach_their_host(controller: Controller, tenants: Tenants,  # noqa: F811
                                                          running: tuple[TestbedAgent, dict[str, str]]) -> None:
    """server-associate-eip / server-dissociate-eip as Cloudpods: the host's agent is told the NAT
    (real packets: tests/integration/test_secgroups_nft.py); refusals change nothing; another
    project sees neither the server nor the EIP."""
    _, net = running
    tag = uuid.uuid4().hex[:6]
    octet = unique_octet()
    cj(controller, "network-create", net["wire"], f"eipn-{tag}", f"100.64.{octet}.10", f"100.64.{octet}.20", "24",
       "--server-type", "eip")
    e1 = cj(controller, "eip-create", f"eip1-{tag}", f"eipn-{tag}")
    e2 = cj(controller, "eip-create", f"eip2-{tag}", f"eipn-{tag}")
    s = mk_server(controller, net, f"eip-s-{tag}")
    s2 = mk_server(controller, net, f"eip-t-{tag}")
    v0 = host_rules(controller, net["host_id"])["version"]
    out = cj(controller, "server-associate-eip", s["id"], e1["name"])
    assert out["eip"] == e1["ip_addr"]
    spec = host_rules(controller, net["host_id"])
    assert spec["version"] > v0
    assert [(e["eip"], e["ip"], e["server_id"]) for e in spec["eips"]] == [
        (e1["ip_addr"], s["nics"][0]["ip_addr"], s["id"])]
    assert spec["eips"][0]["cidr"] == f"{net['prefix']}0/24"
    assert cj(controller, "eip-show", e1["id"])["associate_id"] == s["id"]
    # refusals: one readable line, nothing changed
    for args, fragment in ((("server-associate-eip", s["id"], e2["name"]), "already has eip"),
                           (("server-associate-eip", s2["id"], e1["name"]), "dissociate it first"),
                           (("server-associate-eip", s["id"], e1["name"]), "already associated"),
                           (("server-associate-eip", s2["id"], f"nope-{tag}"), f"nope-{tag}"),
                           (("server-associate-eip", s2["id"], e2["name"], "--ip-addr", "10.255.0.1"),
                            "is not an address of"),
                           (("server-dissociate-eip", s2["id"]), "has no eip")):
        r = controller.climc(*args)
        assert r.returncode != 0 and fragment in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = controller.climc("eip-delete", e1["id"])
    assert r.returncode != 0 and "dissociate it first" in r.stderr, r.stderr
    assert [e["eip"] for e in host_rules(controller, net["host_id"])["eips"]] == [e1["ip_addr"]]
    # another project: neither the server nor the EIP exist for it
    b: httpx.Client = tenants.b
    flat_error(b.post(f"/servers/{s['id']}/dissociate-eip", json={}), 404)
    flat_error(b.get(f"/eips/{e1['id']}"), 404)
    # dissociate: the host drops the NAT; --auto-delete releases the EIP too
    cj(controller, "server-dissociate-eip", s["id"])
    assert host_rules(controller, net["host_id"])["eips"] == []
    assert not cj(controller, "eip-show", e1["id"])["associate_id"]
    # the same through Cloudpods' eip verbs
    assert cj(controller, "eip-associate", e1["name"], s["name"])["associate_id"] == s["id"]
    assert [(e["eip"], e["server_id"]) for e in host_rules(controller, net["host_id"])["eips"]] == [
        (e1["ip_addr"], s["id"])]
    assert not cj(controller, "eip-dissociate", e1["name"]).get("associate_id")
    assert host_rules(controller, net["host_id"])["eips"] == []
    r = controller.climc("eip-dissociate", e1["name"])
    assert r.returncode != 0 and "not associated" in r.stderr, r.stderr
    cj(controller, "server-associate-eip", s2["id"], e2["id"], "--ip-addr", s2["nics"][0]["ip_addr"])
    cj(controller, "server-dissociate-eip", s2["id"], "--auto-delete")
    assert controller.api.get(f"{B}/eips/{e2['id']}").status_code == 404
    acts = controller.api.get("/api/s/identity/v3/actions", params={"obj_type": "server", "limit": 0}).json()["actions"]
    assert {"associate-eip", "dissociate-eip"} <= {a["action"] for a in acts if a["obj_id"] == s["id"]}


def test_change_bandwidth_reaches_the_host(controller: Controller, tenants: Tenants,  # noqa: F811
                                           running: tuple[TestbedAgent, dict[str, str]]) -> None:
    """server-change-bandwidth as Cloudpods (the nic by index, MAC or IP): the nic shows it, the
    host's agent is told it (real packets: tests/integration/test_secgroups_nft.py)."""
    _, net = running
    s = mk_server(controller, net, f"bw-{uuid.uuid4().hex[:6]}")
    nic = s["nics"][0]
    v0 = host_rules(controller, net["host_id"])["version"]
    assert cj(controller, "server-change-bandwidth", s["id"], "0", "50")["nics"][0]["bw_limit"] == 50
    spec = host_rules(controller, net["host_id"])
    assert spec["version"] > v0 and [p["bw_limit"] for p in spec["ports"] if p["server_id"] == s["id"]] == [50]
    assert cj(controller, "server-change-bandwidth", s["id"], nic["ip_addr"], "70")["nics"][0]["bw_limit"] == 70
    for args, fragment in (((nic["mac"], "200000"), "bandwidth"), (("3", "10"), "no nic with index"),
                           (("10.255.255.1", "10"), "no nic with ip_addr"), (("eth0", "10"), "index, MAC or IP")):
        r = controller.climc("server-change-bandwidth", s["id"], *args)
        assert r.returncode != 0 and fragment in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    for body in ({"index": 0}, {"index": 0, "bandwidth": "10"}, {"bandwidth": 10},
                 {"index": 0, "mac": nic["mac"], "bandwidth": 10}):
        flat_error(controller.api.post(f"{B}/servers/{s['id']}/change-bandwidth", json=body), 400)
    flat_error(tenants.b.post(f"/servers/{s['id']}/change-bandwidth", json={"index": 0, "bandwidth": 1}), 404)
    assert srv(controller, s["id"])["nics"][0]["bw_limit"] == 70  # nothing changed
    assert cj(controller, "server-change-bandwidth", s["id"], nic["mac"], "0")["nics"][0]["bw_limit"] == 0


def test_server_create_with_an_eip_keeps_or_releases_it_on_delete(
        controller: Controller, tenants: Tenants, running: tuple[TestbedAgent, dict[str, str]]) -> None:  # noqa: F811
    """server-create --eip-bw (a new EIP per server) / --eip (an existing one) as Cloudpods' climc:
    the host is told the NAT with the guest's build; one EIP per server, also under two requests at
    once; server-delete keeps the EIP (free) unless --delete-eip or the EIP's auto_dellocate; the
    recycle bin takes the EIP off the server; another project can neither use nor see these EIPs."""
    _, net = running
    tag = uuid.uuid4().hex[:6]
    octet = unique_octet()
    cj(controller, "network-create", net["wire"], f"ceipn-{tag}", f"100.65.{octet}.10", f"100.65.{octet}.30", "24",
       "--server-type", "eip")
    e1 = cj(controller, "eip-create", f"ceip1-{tag}", f"ceipn-{tag}", "--charge-type", "traffic")
    e2 = cj(controller, "eip-create", f"ceip2-{tag}", f"ceipn-{tag}")
    assert (e1["charge_type"], e2["charge_type"], e1["auto_dellocate"]) == ("traffic", "bandwidth", False)

    def eip_of(server: dict[str, Any]) -> dict[str, Any]:
        rows = controller.api.get(f"{B}/eips", params={"associate_id": server["id"], "limit": 0}).json()["eips"]
        assert len(rows) == 1, rows
        return rows[0]  # type: ignore[no-any-return]

    s1 = mk_server(controller, net, f"ce-a-{tag}", "--eip-bw", "30", "--eip-charge-type", "traffic")
    s2 = mk_server(controller, net, f"ce-b-{tag}", "--eip", e1["name"])
    s3 = mk_server(controller, net, f"ce-c-{tag}", "--eip-bw", "5", "--eip-auto-dellocate")
    a, b3 = eip_of(s1), eip_of(s3)
    assert (a["name"], a["bandwidth"], a["charge_type"], a["auto_dellocate"]) == (
        f"eip-for-srv-ce-a-{tag}", 30, "traffic", False)
    assert a["ip_addr"].startswith(f"100.65.{octet}.") and b3["auto_dellocate"] is True
    assert eip_of(s2)["id"] == e1["id"]
    assert [cj(controller, "server-show", s["id"])["eip"] for s in (s1, s2, s3)] == [
        a["ip_addr"], e1["ip_addr"], b3["ip_addr"]]
    mapped = {(e["eip"], e["ip"]) for e in host_rules(controller, net["host_id"])["eips"]}
    assert {(a["ip_addr"], s1["nics"][0]["ip_addr"]), (e1["ip_addr"], s2["nics"][0]["ip_addr"]),
            (b3["ip_addr"], s3["nics"][0]["ip_addr"])} <= mapped

    # one EIP per server, one server per EIP: refusals in one line, and two requests at once
    for args, fragment in ((("server-associate-eip", s1["id"], e2["name"]), "already has eip"),
                           (("server-create", f"ce-x-{tag}", "--disk", "cirros", "--net", net["net"], "--eip",
                             e1["name"]), "dissociate it first"),
                           (("server-create", f"ce-x-{tag}", "--disk", "cirros", "--net", net["net"], "--eip",
                             e2["name"], "--count", "2"), "one EIP maps to one server"),
                           (("server-create", f"ce-x-{tag}", "--disk", "cirros", "--net", net["net"], "--eip",
                             e2["name"], "--eip-bw", "5"), "give one"),
                           (("server-create", f"ce-x-{tag}", "--disk", "cirros", "--eip-bw", "5"), "--net")):
        r = controller.climc(*args)
        assert r.returncode != 0 and fragment in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    for body in ({"eip_bw": -1}, {"eip_bw": 5, "eip_charge_type": "monthly"}, {"eip_charge_type": "traffic"},
                 {"eip_bw": 5, "hypervisor": "aws"}):
        flat_error(controller.api.post(f"{B}/servers", json={"server": {
            "name": f"ce-y-{tag}", "disks": ["cirros"], "nets": [net["net"]], **body}}), 400)
    assert controller.api.get(f"{B}/servers", params={"search": f"ce-x-{tag}"}).json()["servers"] == []
    token = controller.api.headers["X-Auth-Token"]

    def post(path: str, body: dict[str, Any]) -> int:
        with httpx.Client(base_url=controller.url, headers={"X-Auth-Token": token}, timeout=60) as c:
            return c.post(f"{B}{path}", json=body).status_code

    from concurrent.futures import ThreadPoolExecutor

    cj(controller, "server-dissociate-eip", s2["id"])  # e1 free again; s2 without an EIP
    with ThreadPoolExecutor(2) as pool:
        codes = sorted(pool.map(lambda e: post(f"/servers/{s2['id']}/associate-eip", {"eip_id": e}),
                                (e1["id"], e2["id"])))
    assert codes == [200, 409], codes
    assert len(controller.api.get(f"{B}/eips", params={"associate_id": s2["id"]}).json()["eips"]) == 1

    # another project: cannot name these EIPs at create, nor see or dissociate them
    tb: httpx.Client = tenants.b
    r = tb.post("/servers", json={"server": {"name": f"ce-z-{tag}", "nets": [net["net"]], "eip": e2["id"]}})
    assert e2["id"] in flat_error(r, 400)["details"] and "not found" in r.json()["details"]
    flat_error(tb.get(f"/eips/{a['id']}"), 404)
    flat_error(tb.post(f"/servers/{s1['id']}/dissociate-eip", json={}), 404)
    assert all(e["id"] != a["id"] for e in tb.get("/eips", params={"limit": 0}).json()["eips"])

    def gone(s: dict[str, Any]) -> None:
        wait_for(lambda: controller.api.get(f"{B}/servers/{s['id']}").status_code == 404, 60, f"{s['name']} gone")

    # the recycle bin takes the EIP off the server (kept, free), as Cloudpods' delete task
    assert controller.climc("server-delete", s1["id"]).returncode == 0
    assert not cj(controller, "eip-show", a["id"])["associate_id"]
    assert a["ip_addr"] not in {e["eip"] for e in host_rules(controller, net["host_id"])["eips"]}
    # --delete-eip releases it; auto_dellocate releases it; otherwise it stays, free
    held = eip_of(s2)
    assert controller.climc("server-delete", "-f", "--delete-eip", s2["id"]).returncode == 0
    assert controller.climc("server-delete", "-f", s3["id"]).returncode == 0
    assert controller.climc("server-delete", "-f", s1["id"]).returncode == 0
    for s in (s1, s2, s3):
        gone(s)
    assert controller.api.get(f"{B}/eips/{held['id']}").status_code == 404
    assert controller.api.get(f"{B}/eips/{b3['id']}").status_code == 404
    assert not cj(controller, "eip-show", a["id"])["associate_id"]
    assert cj(controller, "eip-update", a["id"], "--auto-dellocate", "true")["auto_dellocate"] is True
    assert host_rules(controller, net["host_id"])["eips"] == [] or all(
        e["eip"] not in (a["ip_addr"], held["ip_addr"], b3["ip_addr"])
        for e in host_rules(controller, net["host_id"])["eips"])


def test_eip_quota_holds_eip_create_and_server_create_eip_bw(
        controller: Controller, tenants: Tenants, running: tuple[TestbedAgent, dict[str, str]]) -> None:  # noqa: F811
    """Cloudpods' ``eip`` quota: eip-create and server-create --eip-bw reserve one each (refused in one
    line at the limit, before anything is made), the server's reservation passes to the EIP made
    for it (counted once), deleting the EIP gives it back; one project's limit and usage are its own."""
    _, net = running
    tag = uuid.uuid4().hex[:6]
    octet = unique_octet()
    cj(controller, "network-create", net["wire"], f"qeipn-{tag}", f"100.66.{octet}.10", f"100.66.{octet}.30", "24",
       "--server-type", "eip")

    def used(client: httpx.Client | None = None) -> int:
        q = (client or controller.api).get(("" if client else B) + "/quotas").json()["quota"]
        return int(q["usage.eip"])

    # project A at a limit of 2: two EIPs, the third refused; project B is not held by A's limit
    a, b = tenants.a, tenants.b
    cj(controller, "quota-set", "--project", tenants.pa["id"], "--eip", "2")
    mine = [a.post("/eips", json={"eip": {"name": f"qa{i}-{tag}", "network": f"qeipn-{tag}"}}) for i in range(2)]
    assert [r.status_code for r in mine] == [200, 200], [r.text for r in mine]
    r = a.post("/eips", json={"eip": {"name": f"qa2-{tag}", "network": f"qeipn-{tag}"}})
    assert "eip (requested 1, used 2, limit 2)" in flat_error(r, 400, "OutOfQuotaError")["details"]
    assert a.get("/eips", params={"search": f"qa2-{tag}"}).json()["eips"] == []
    theirs = b.post("/eips", json={"eip": {"name": f"qb-{tag}", "network": f"qeipn-{tag}"}})
    assert theirs.status_code == 200, theirs.text
    assert (used(a), used(b)) == (2, 1)
    flat_error(b.get("/quotas", params={"project": tenants.pa["id"]}), 403)  # nor can B read or raise A's
    flat_error(b.post("/quotas", json={"quota": {"eip": 50}, "project": tenants.pa["id"]}), 403)
    assert a.delete(f"/eips/{mine[0].json()['eip']['id']}").status_code == 200
    assert used(a) == 1  # deleting an EIP gives its quota back

    # server-create --eip-bw reserves one per server at the API, then the EIP made for it holds it
    base = used()
    cj(controller, "quota-set", "--eip", str(base + 1))
    try:
        r = controller.climc("server-create", f"qs-{tag}", "--disk", "cirros", "--net", net["net"], "--eip-bw", "5",
                             "--count", "2")
        assert r.returncode != 0 and f"eip (requested 2, used {base}, limit {base + 1})" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert controller.api.get(f"{B}/servers", params={"search": f"qs-{tag}"}).json()["servers"] == []
        s = mk_server(controller, net, f"qs-{tag}", "--eip-bw", "5")
        eip = controller.api.get(f"{B}/eips", params={"associate_id": s["id"]}).json()["eips"]
        assert len(eip) == 1 and used() == base + 1  # the server's reservation became the EIP's: one, not two
        r = controller.climc("eip-create", f"qx-{tag}", f"qeipn-{tag}")
        assert r.returncode != 0 and "eip (requested 1" in r.stderr, r.stderr
        assert controller.climc("server-delete", "-f", "--delete-eip", s["id"]).returncode == 0
        wait_for(lambda: controller.api.get(f"{B}/servers/{s['id']}").status_code == 404, 60, "server gone")
        assert controller.api.get(f"{B}/eips/{eip[0]['id']}").status_code == 404 and used() == base
    finally:
        cj(controller, "quota-set", "--eip", "10")


def test_secgroup_clone_copies_the_rules_into_the_callers_project(controller: Controller,
                                                                  tenants: Tenants) -> None:  # noqa: F811
    """secgroup-clone as Cloudpods: a new group with the source's rules ("from the same group" names
    the copy); another project can neither clone nor see the source; its own clone is its own."""
    tag = uuid.uuid4().hex[:6]
    src, dst = f"cl-src-{tag}", f"cl-dst-{tag}"
    s = cj(controller, "secgroup-create", src, "--desc", "web tier")
    cj(controller, "secgroup-rule-create", src, "--protocol", "tcp", "--ports", "22,443", "--cidr", "10.9.0.0/16",
       "--priority", "60")
    cj(controller, "secgroup-rule-create", src, "--peer-secgroup", src, "--priority", "5")
    cj(controller, "secgroup-rule-create", src, "--direction", "out", "--action", "deny", "--protocol", "udp")
    c = cj(controller, "secgroup-clone", src, dst)
    assert (c["name"], c["description"], c["tenant_id"]) == (dst, "web tier", s["tenant_id"]) and c["id"] != s["id"]

    def shape(g: dict[str, Any], me: str) -> set[tuple[Any, ...]]:
        return {(r["direction"], r["action"], r["protocol"], r["ports"], r["cidr"], r["priority"],
                 "self" if r["peer_secgroup_id"] == me else r["peer_secgroup_id"]) for r in g["rules"]}

    src_now = cj(controller, "secgroup-show", src)
    assert len(c["rules"]) == 3 and shape(c, c["id"]) == shape(src_now, s["id"])
    # refusals: one line, nothing made
    for args, fragment in ((("secgroup-clone", src, dst), "already in use"),
                           (("secgroup-clone", f"nope-{tag}", f"cl-x-{tag}"), f"nope-{tag}")):
        r = controller.climc(*args)
        assert r.returncode != 0 and fragment in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    flat_error(controller.api.post(f"{B}/secgroups/{s['id']}/clone", json={"name": f"cl-y-{tag}", "bogus": 1}), 400)
    assert controller.api.get(f"{B}/secgroups", params={"search": f"cl-x-{tag}"}).json()["secgroups"] == []
    # another project: the source does not exist for it; a clone of its own group lands in its project
    b: httpx.Client = tenants.b
    flat_error(b.post(f"/secgroups/{s['id']}/clone", json={"name": f"cl-b-{tag}"}), 404)
    own = b.post("/secgroups", json={"secgroup": {"name": f"cl-bsrc-{tag}"}})
    assert own.status_code == 200, own.text
    mine = b.post(f"/secgroups/{own.json()['secgroup']['id']}/clone", json={"name": f"cl-b-{tag}"})
    assert mine.status_code == 200 and mine.json()["secgroup"]["tenant_id"] == tenants.pb["id"], mine.text
