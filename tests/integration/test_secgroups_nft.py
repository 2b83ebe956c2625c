"""Security groups with real packets (issue 16), as root: a controller, a real `ocadm agent`
(libvirt test:/// for the guests' lifecycle, nftables for real), and each guest stood in for by a
network namespace whose veth's host end carries the guest's tap name on the agent's bridge (in
its own namespace, so nothing touches the machine's networking).

Proves: allowed traffic passes and denied traffic drops (Default's "same group" rule, a port
rule), a rule change reaches the kernel within a second of the API call (measured; asserted with
slack for a loaded CI), spoofed source IP / MAC drop, an agent restarted mid-way re-applies the
same ruleset, and a deleted server's chains are gone. Everything is prefixed ``cmn``.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from drivers.kvm.instances import tap_name
from tests.e2e.test_agent_support import AgentProc, B, libvirt_or_skip, server, upload_tiny_image, wait_for
from tests.support.controller import Controller
from tests.support.peers import need_binary, need_root

TABLE = "cmn_fw"


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {p.stderr.strip()}")
    return p


@dataclass
class Lab:
    ctl: Controller
    agent: AgentProc
    host_ns: str
    tag: str
    guests: dict[str, str]  # server id -> its namespace

    def ruleset(self) -> str:
        return sh("ip", "netns", "exec", self.host_ns, "nft", "list", "table", "inet", TABLE, check=False).stdout + \
            sh("ip", "netns", "exec", self.host_ns, "nft", "list", "table", "bridge", TABLE, check=False).stdout

    def plug(self, srv: dict[str, Any]) -> str:
        """A namespace as the guest: its nic's MAC and IP, the host end named as the guest's tap."""
        nic = srv["nics"][0]
        ns = f"cmng{len(self.guests)}{self.tag}"
        tap = tap_name(srv["id"], 0)
        sh("ip", "netns", "add", ns)
        self.guests[srv["id"]] = ns
        sh("ip", "-n", self.host_ns, "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", self.host_ns, "link", "set", tap, "master", "cmnbr", "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "address", nic["mac"], "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "addr", "add", f"{nic['ip_addr']}/24", "dev", "eth0")
        return ns

    def ping(self, src: dict[str, Any], dst: dict[str, Any], *extra: str) -> bool:
        return sh("ip", "netns", "exec", self.guests[src["id"]], "ping", "-c1", "-W1", *extra,
                  dst["nics"][0]["ip_addr"], check=False).returncode == 0

    def tcp(self, src: dict[str, Any], dst: dict[str, Any], port: int) -> bool:
        return sh("ip", "netns", "exec", self.guests[src["id"]], "nc", "-z", "-w1", dst["nics"][0]["ip_addr"],
                  str(port), check=False).returncode == 0


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    need_root()
    need_binary("nft", "nftables")
    need_binary("nc", "netcat-openbsd")
    libvirt_or_skip()
    root = tmp_path_factory.mktemp("cmn-secgroups")
    tag = uuid.uuid4().hex[:5]
    host_ns = f"cmnh{tag}"
    ctl = Controller.init(root / "ctl")
    agent = None
    lab = None
    try:
        sh("ip", "netns", "add", host_ns)
        sh("ip", "-n", host_ns, "link", "add", "cmnbr", "type", "bridge")
        sh("ip", "-n", host_ns, "link", "set", "cmnbr", "up")
        ctl.serve()
        agent = AgentProc.join(ctl, root / "agent", f"cmn-{tag}", settings={
            "firewall": "nft", "firewall_netns": host_ns, "firewall_table": TABLE})
        agent.start()
        upload_tiny_image(ctl)
        lab = Lab(ctl, agent, host_ns, tag, {})
        yield lab
    finally:
        if agent is not None:
            agent.stop()
        ctl.stop()
        for ns in [*(lab.guests.values() if lab else []), host_ns]:
            sh("ip", "netns", "del", ns, check=False)


def create(lab: Lab, name: str, *extra: str) -> dict[str, Any]:
    r = lab.ctl.climc("server-create", name, "--disk", "tiny", "--net", "default", "--auto-start", *extra,
                      "-o", "json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    sid = out["id"] if "id" in out else out["data"][0]["id"]
    return dict(wait_for(lambda: (s := server(lab.ctl, sid))["status"] == "running" and s, 30, f"{name} running"))


def chain(srv: dict[str, Any], what: str) -> str:
    return f"p_{srv['id'].replace('-', '')}_0_{what}"


def serve_tcp(lab: Lab, srv: dict[str, Any], port: int) -> subprocess.Popen[bytes]:
    """A listener in the guest's namespace (nc -k: answers every connection)."""
    p = subprocess.Popen(["ip", "netns", "exec", lab.guests[srv["id"]], "nc", "-lk", "-p", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p


def normalized(ruleset: str) -> str:
    return re.sub(r"\s+", " ", ruleset).strip()


def test_security_groups_with_real_packets(lab: Lab) -> None:
    ctl = lab.ctl
    web = f"cmn-web-{lab.tag}"
    assert ctl.climc("secgroup-create", web).returncode == 0
    r = ctl.climc("secgroup-rule-create", web, "--protocol", "tcp", "--ports", "8080", "--priority", "10")
    assert r.returncode == 0, r.stderr
    r = ctl.climc("secgroup-rule-create", web, "--direction", "out")
    assert r.returncode == 0, r.stderr
    a, b = create(lab, f"cmn-a-{lab.tag}"), create(lab, f"cmn-b-{lab.tag}")  # both in the project's Default
    c = create(lab, f"cmn-c-{lab.tag}", "--secgroup", web)
    for s in (a, b, c):
        lab.plug(s)
    wait_for(lambda: all(chain(s, "in") in lab.ruleset() for s in (a, b, c)), 10, "the guests' chains")
    listener = serve_tcp(lab, c, 8080)
    try:
        # Default: ingress from the same group, all egress; web: tcp 8080 from anywhere
        assert wait_for(lambda: lab.ping(a, b), 10, "a -> b (same Default group)")
        assert not lab.ping(c, a), "c is not in Default: a's ingress must drop it"
        assert wait_for(lambda: lab.tcp(a, c, 8080), 10, "a -> c:8080 (web allows it)")
        assert not lab.tcp(a, c, 8081), "web allows 8080 only"
        assert not lab.ping(a, c), "web has no icmp rule"

        # a rule change reaches the kernel within a second of the API call returning
        t0 = time.monotonic()
        r = ctl.api.post(f"{B}/secgrouprules", json={"secgrouprule": {
            "secgroup_id": web, "direction": "in", "protocol": "icmp", "priority": 5}})
        assert r.status_code == 200, r.text
        t1 = time.monotonic()
        wait_for(lambda: "meta l4proto icmp accept" in lab.ruleset(), 10, "the icmp rule in nftables")
        took = time.monotonic() - t1
        print(f"rule change -> nftables: {took * 1000:.0f} ms after the API call returned "
              f"(call {1000 * (t1 - t0):.0f} ms)")
        assert took < 3.0, took  # the promise is 1 s; bench/secgroup.py reports the distribution
        assert wait_for(lambda: lab.ping(a, c), 5, "a -> c icmp once allowed")
        # a deny at a higher priority wins over the allow
        rid = r.json()["secgrouprule"]["id"]
        r2 = ctl.climc("secgroup-rule-create", web, "--action", "deny", "--protocol", "icmp", "--cidr",
                       f"{a['nics'][0]['ip_addr']}/32", "--priority", "50")
        assert r2.returncode == 0, r2.stderr
        wait_for(lambda: "meta l4proto icmp drop" in lab.ruleset(), 10, "the deny rule")
        assert not lab.ping(a, c)
        assert wait_for(lambda: lab.ping(b, c), 5, "b is not named by the deny")
        assert ctl.climc("secgroup-rule-delete", rid).returncode == 0

        # spoofing: another source IP, another source MAC: dropped at the bridge
        ns_a = lab.guests[a["id"]]
        sh("ip", "-n", ns_a, "addr", "add", "10.199.0.250/24", "dev", "eth0")
        assert not lab.ping(a, b, "-I", "10.199.0.250"), "a spoofed source IP must drop"
        assert lab.ping(a, b), "a's own address still works"
        sh("ip", "-n", ns_a, "link", "set", "eth0", "address", "00:22:cc:00:00:01")
        sh("ip", "netns", "exec", lab.guests[b["id"]], "ip", "neigh", "flush", "all")
        assert not lab.ping(a, b), "a spoofed source MAC must drop"
        # the owner turns the MAC check off (Cloudpods' src_mac_check): the same frames pass
        r = ctl.climc("server-update", a["id"], "--src-mac-check", "false")
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: lab.ping(a, b), 10, "a -> b with src_mac_check off")
        sh("ip", "-n", ns_a, "link", "set", "eth0", "address", a["nics"][0]["mac"])
        assert ctl.climc("server-update", a["id"], "--src-mac-check", "true").returncode == 0

        # the agent restarted mid-way: the rules stay while it is down and come back identical
        wait_for(lambda: "00:22:cc" not in lab.ruleset() and f"ether saddr != {a['nics'][0]['mac']}" in
                 lab.ruleset(), 10, "mac check back on")
        before = normalized(lab.ruleset())
        lab.agent.stop()
        assert normalized(lab.ruleset()) == before, "a stopped agent leaves the guests protected"
        mark = len(lab.agent.log_path.read_bytes())
        lab.agent.start()
        wait_for(lambda: b"security groups v" in lab.agent.log_path.read_bytes()[mark:], 20, "re-applied")
        assert normalized(lab.ruleset()) == before

        # a deleted server's chains go
        assert ctl.climc("server-delete", "-f", c["id"]).returncode == 0
        wait_for(lambda: ctl.api.get(f"{B}/servers/{c['id']}").status_code == 404, 30, "c deleted")
        wait_for(lambda: chain(c, "in") not in lab.ruleset() and chain(c, "src") not in lab.ruleset(), 10,
                 "c's chains gone")
        assert chain(a, "in") in lab.ruleset()
    finally:
        listener.kill()
        listener.wait(5)


def test_fifty_rule_changes_in_parallel_end_as_the_region_says(lab: Lab) -> None:
    """50 rules created at once from 10 threads: the host ends with every one of them, at the
    region's version (a lost wake-up or a stale apply would leave some out or an older version)."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    ctl = lab.ctl
    g = f"cmn-par-{lab.tag}"
    assert ctl.climc("secgroup-create", g).returncode == 0
    s = create(lab, f"cmn-p-{lab.tag}", "--secgroup", g)
    wait_for(lambda: chain(s, "in") in lab.ruleset(), 10, "the guest's chains")
    token = ctl.api.headers["X-Auth-Token"]

    def add(i: int) -> int:
        with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": token}, timeout=60) as c:
            return c.post(f"{B}/secgrouprules", json={"secgrouprule": {
                "secgroup_id": g, "protocol": "tcp", "ports": str(40000 + i), "priority": 1 + i % 100}}).status_code

    with ThreadPoolExecutor(10) as pool:
        assert set(pool.map(add, range(50))) == {200}
    version = ctl.api.get(f"{B}/agent/hosts/{lab.agent.host_id}/secgroups").json()["secgroups"]["version"]

    def settled() -> bool:
        text = lab.ruleset()
        shown = ctl.api.get(f"{B}/hosts/{lab.agent.host_id}").json()["host"].get("secgroup_status", "")
        return all(f"tcp dport {40000 + i} accept" in text for i in range(50)) and f"v{version}," in shown

    wait_for(settled, 20, "all 50 rules on the host at the region's version")
