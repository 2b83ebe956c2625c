"""Security groups with real packets (issue 16), as root: a controller, a real `ocadm agent`
(libvirt test:/// for the guests' lifecycle, nftables for real), and each guest stood in for by a
network namespace whose veth's host end carries the guest's tap name on the agent's bridge (in
its own namespace, so nothing touches the machine's networking).

Proves: allowed traffic passes and denied traffic drops (Default's "same group" rule, a port
rule), a rule change reaches the kernel within a second of the API call (measured and printed;
asserted with slack for a loaded CI), spoofed source IP / MAC drop, an agent restarted mid-way re-applies the
same ruleset, and a deleted server's chains and elements are gone. Everything is prefixed ``cmn``.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    plugged: dict[str, str] = field(default_factory=dict)  # server id -> the host namespace its port is in

    def ruleset(self, host_ns: str = "") -> str:
        ns = host_ns or self.host_ns
        return sh("ip", "netns", "exec", ns, "nft", "list", "table", "inet", TABLE, check=False).stdout + \
            sh("ip", "netns", "exec", ns, "nft", "list", "table", "bridge", TABLE, check=False).stdout

    def plug(self, srv: dict[str, Any], host_ns: str = "") -> str:
        """A namespace as the guest: its nic's MAC and IP, the host end named as the guest's tap (a
        plugged guest plugged again: a new port, as when its qemu starts again; ``host_ns``: on
        another host, as after a migration)."""
        nic = srv["nics"][0]
        tap = tap_name(srv["id"], 0)
        ns = self.guests.get(srv["id"], "")
        if ns:
            sh("ip", "-n", self.plugged[srv["id"]], "link", "del", tap)
        else:
            ns = f"cmng{len(self.guests)}{self.tag}"
            sh("ip", "netns", "add", ns)
            self.guests[srv["id"]] = ns
        host_ns = self.plugged[srv["id"]] = host_ns or self.host_ns
        sh("ip", "-n", host_ns, "link", "add", tap, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", host_ns, "link", "set", tap, "master", "cmnbr", "up")
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
    return dict(wait_for(lambda: (s := server(lab.ctl, sid))["status"] == "running" and s, 60, f"{name} running"))


def chain(srv: dict[str, Any], what: str) -> str:
    """What the listing shows while the guest's port is there: its address jumping to its ingress
    chain (``in``), its tap marked at the bridge (``src``)."""
    if what == "in":
        return f" {srv['nics'][0]['ip_addr']} : jump g_"
    return f'"{tap_name(srv["id"], 0)}" : 0x0c'


def serve_tcp(lab: Lab, srv: dict[str, Any], port: int) -> subprocess.Popen[bytes]:
    """A listener in the guest's namespace (nc -k: answers every connection)."""
    p = subprocess.Popen(["ip", "netns", "exec", lab.guests[srv["id"]], "nc", "-lk", "-p", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p


def canonical(lab: Lab) -> dict[str, Any]:
    """The agent's tables as data: elements sorted, handles dropped, rules in their chain's order (an
    incremental apply and a full one list chains and elements in different orders)."""
    out: dict[str, Any] = {}
    for fam in ("inet", "bridge"):
        text = sh("ip", "netns", "exec", lab.host_ns, "nft", "-j", "list", "table", fam, TABLE).stdout
        for o in json.loads(text)["nftables"]:
            ((kind, v),) = o.items()
            if kind == "metainfo":
                continue
            v = {k: x for k, x in v.items() if k != "handle"}
            if "elem" in v:
                v["elem"] = sorted(json.dumps(e, sort_keys=True) for e in v["elem"])
            if kind == "rule":
                out.setdefault(f"rules {fam} {v['chain']}", []).append(json.dumps(v["expr"], sort_keys=True))
            else:
                out[f"{kind} {fam} {v.get('name')}"] = v
    return out


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
    wait_for(lambda: all(chain(s, "in") in lab.ruleset() for s in (a, b, c)), 60, "the guests' chains")
    listener = serve_tcp(lab, c, 8080)
    try:
        # Default: ingress from the same group, all egress; web: tcp 8080 from anywhere
        assert wait_for(lambda: lab.ping(a, b), 60, "a -> b (same Default group)")
        assert not lab.ping(c, a), "c is not in Default: a's ingress must drop it"
        assert wait_for(lambda: lab.tcp(a, c, 8080), 60, "a -> c:8080 (web allows it)")
        assert not lab.tcp(a, c, 8081), "web allows 8080 only"
        assert not lab.ping(a, c), "web has no icmp rule"

        # a rule change reaches the kernel within a second of the API call returning
        t0 = time.monotonic()
        r = ctl.api.post(f"{B}/secgrouprules", json={"secgrouprule": {
            "secgroup_id": web, "direction": "in", "protocol": "icmp", "priority": 5}})
        assert r.status_code == 200, r.text
        t1 = time.monotonic()
        wait_for(lambda: "meta l4proto icmp accept" in lab.ruleset(), 60, "the icmp rule in nftables")
        took = time.monotonic() - t1
        print(f"rule change -> nftables: {took * 1000:.0f} ms after the API call returned "
              f"(call {1000 * (t1 - t0):.0f} ms)")
        # the promise is 1 s, measured by bench/secgroup.py (the distribution, unloaded); the early
        # return of the agent's long poll is proven in tests/e2e/test_secgroups.py. Here the bound only
        # says the change reaches the kernel promptly, with room for a loaded CI box (load ~30 seen)
        assert took < 10.0, took
        assert wait_for(lambda: lab.ping(a, c), 60, "a -> c icmp once allowed")
        assert b"delta apply" in lab.agent.log_path.read_bytes(), "a rule change replaces only what changed"
        # a deny at a higher priority wins over the allow
        rid = r.json()["secgrouprule"]["id"]
        r2 = ctl.climc("secgroup-rule-create", web, "--action", "deny", "--protocol", "icmp", "--cidr",
                       f"{a['nics'][0]['ip_addr']}/32", "--priority", "50")
        assert r2.returncode == 0, r2.stderr
        wait_for(lambda: "meta l4proto icmp drop" in lab.ruleset(), 60, "the deny rule")
        assert not lab.ping(a, c)
        assert wait_for(lambda: lab.ping(b, c), 60, "b is not named by the deny")
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
        assert wait_for(lambda: lab.ping(a, b), 60, "a -> b with src_mac_check off")
        sh("ip", "-n", ns_a, "link", "set", "eth0", "address", a["nics"][0]["mac"])
        assert ctl.climc("server-update", a["id"], "--src-mac-check", "true").returncode == 0

        # the agent restarted mid-way: the rules stay while it is down and come back identical
        wait_for(lambda: "00:22:cc" not in lab.ruleset() and f'"{tap_name(a["id"], 0)}" . {a["nics"][0]["mac"]}' in
                 lab.ruleset(), 60, "mac check back on")
        before = canonical(lab)  # what incremental applies built
        lab.agent.stop()
        assert canonical(lab) == before, "a stopped agent leaves the guests protected"
        mark = len(lab.agent.log_path.read_bytes())
        lab.agent.start()
        wait_for(lambda: b"full apply" in lab.agent.log_path.read_bytes()[mark:], 60, "re-applied")
        assert canonical(lab) == before  # the full apply of a restarted agent builds the same tables

        # a deleted server's chains go
        assert ctl.climc("server-delete", "-f", c["id"]).returncode == 0
        wait_for(lambda: ctl.api.get(f"{B}/servers/{c['id']}").status_code == 404, 60, "c deleted")
        wait_for(lambda: chain(c, "in") not in lab.ruleset() and chain(c, "src") not in lab.ruleset(), 60,
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
    wait_for(lambda: chain(s, "in") in lab.ruleset(), 60, "the guest's chains")
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

    wait_for(settled, 60, "all 50 rules on the host at the region's version")


# one TCP exchange, each end printing the addresses it saw: run with the venv's python in a namespace
_SERVE = """import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(); s.settimeout(30)
c, peer = s.accept(); print(peer[0], c.getsockname()[0], flush=True); c.sendall(b"ok"); c.close()
"""
_CONNECT = """import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2); print(c.recv(2).decode())
"""


def exchange(lab: Lab, server_ns: str, client_ns: str, dst: str, port: int) -> tuple[str, str]:
    """(the client's address as the server saw it, the address the server was reached on)."""
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-c", _SERVE, str(port)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def connected() -> bool:
            r = sh("ip", "netns", "exec", client_ns, sys.executable, "-c", _CONNECT, dst, str(port), check=False)
            return r.stdout.strip() == "ok"

        wait_for(connected, 60, f"{client_ns} -> {dst}:{port}")
        out, _ = srv.communicate(timeout=10)
        peer, local = out.split()
        return peer, local
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait(5)


def test_eip_dnat_snat_with_real_packets(lab: Lab) -> None:
    """An EIP associated with a server: from an "outside" namespace routed to the host, the EIP
    reaches the guest's own address; the guest's connections out leave with the EIP; dissociated,
    the EIP reaches nothing; a deleted server frees its EIP."""
    ctl, tag = lab.ctl, lab.tag
    outside = f"cmno{tag}"
    pub = f"cmn-pub-{tag}"
    assert ctl.climc("network-create", "default", f"cmn-eipnet-{tag}", "203.0.113.10", "203.0.113.20", "24",
                     "--server-type", "eip").returncode == 0
    r = ctl.climc("eip-create", f"cmn-eip-{tag}", f"cmn-eipnet-{tag}", "-o", "json")
    assert r.returncode == 0, r.stderr
    eip = json.loads(r.stdout)["ip_addr"]
    assert ctl.climc("secgroup-create", pub).returncode == 0
    for args in (("--protocol", "tcp", "--ports", "8080"), ("--protocol", "icmp"), ("--direction", "out")):
        assert ctl.climc("secgroup-rule-create", pub, *args).returncode == 0
    g = create(lab, f"cmn-e-{tag}", "--secgroup", pub)
    gip = g["nics"][0]["ip_addr"]
    ns = lab.plug(g)
    try:
        # the host: the guests' gateway on the bridge, an uplink to the outside, forwarding (the agent
        # turns it on with the first EIP); outside routes the EIP network to the host
        sh("ip", "-n", lab.host_ns, "addr", "add", "10.199.0.1/24", "dev", "cmnbr")
        sh("ip", "-n", ns, "route", "add", "default", "via", "10.199.0.1")
        sh("ip", "netns", "add", outside)
        sh("ip", "-n", lab.host_ns, "link", "add", "cmnup", "type", "veth", "peer", "name", "eth0", "netns", outside)
        sh("ip", "-n", lab.host_ns, "addr", "add", "198.51.100.1/24", "dev", "cmnup")
        sh("ip", "-n", lab.host_ns, "link", "set", "cmnup", "up")
        sh("ip", "-n", outside, "addr", "add", "198.51.100.2/24", "dev", "eth0")
        sh("ip", "-n", outside, "link", "set", "eth0", "up")
        sh("ip", "-n", outside, "link", "set", "lo", "up")
        sh("ip", "-n", outside, "route", "add", "203.0.113.0/24", "via", "198.51.100.1")

        r = ctl.climc("server-associate-eip", g["id"], f"cmn-eip-{tag}", "-o", "json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["eip"] == eip
        wait_for(lambda: f"{eip} : {gip}" in lab.ruleset(), 60, "the EIP's DNAT on the host")
        # in: the outside reaches the EIP and lands on the guest's own address, from its own address
        peer, local = exchange(lab, ns, outside, eip, 8080)
        assert (peer, local) == ("198.51.100.2", gip)
        assert wait_for(lambda: sh("ip", "netns", "exec", outside, "ping", "-c1", "-W1", eip,
                                   check=False).returncode == 0, 60, "outside pings the EIP")
        # the guest's security group still decides: 8081 is not allowed in
        assert sh("ip", "netns", "exec", outside, "nc", "-z", "-w1", eip, "8081", check=False).returncode != 0
        # out: the guest's connection to the outside leaves with the EIP
        peer, local = exchange(lab, outside, ns, "198.51.100.2", 9000)
        assert peer == eip, f"the outside saw {peer}, not the EIP {eip}"

        # dissociated: the EIP maps to nothing any more
        r = ctl.climc("server-dissociate-eip", g["id"])
        assert r.returncode == 0, r.stderr
        wait_for(lambda: f"{eip} : {gip}" not in lab.ruleset(), 60, "the DNAT gone")
        assert sh("ip", "netns", "exec", outside, "ping", "-c1", "-W1", eip, check=False).returncode != 0
        # associated again, then the server deleted: the EIP is free again and its NAT gone
        assert ctl.climc("server-associate-eip", g["id"], f"cmn-eip-{tag}").returncode == 0
        wait_for(lambda: f"{eip} : {gip}" in lab.ruleset(), 60, "the DNAT back")
        assert ctl.climc("server-delete", "-f", g["id"]).returncode == 0
        wait_for(lambda: ctl.api.get(f"{B}/servers/{g['id']}").status_code == 404, 60, "deleted")
        wait_for(lambda: f"{eip} : {gip}" not in lab.ruleset(), 60, "the DNAT gone with the server")
        shown = json.loads(ctl.climc("eip-show", f"cmn-eip-{tag}", "-o", "json").stdout)
        assert not shown.get("associate_id")
    finally:
        sh("ip", "netns", "del", outside, check=False)


_SINK = """import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(); s.settimeout(60)
c, _ = s.accept(); n = 0; t0 = None
while True:
    b = c.recv(65536)
    if not b:
        break
    t0 = t0 or time.monotonic(); n += len(b)
print(n, time.monotonic() - t0, flush=True)
"""
_SOURCE = """import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); c.settimeout(60)
c.sendall(b"x" * int(sys.argv[3])); c.shutdown(socket.SHUT_WR); c.recv(1)
"""


def mbps(lab: Lab, src: dict[str, Any], dst: dict[str, Any], port: int, nbytes: int) -> float:
    """A bounded TCP transfer src -> dst: its rate at the receiver (first byte to last), Mbit/s."""
    sink = subprocess.Popen(["ip", "netns", "exec", lab.guests[dst["id"]], sys.executable, "-c", _SINK, str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: sh("ip", "netns", "exec", lab.guests[src["id"]], sys.executable, "-c", _SOURCE,
                            dst["nics"][0]["ip_addr"], str(port), str(nbytes), check=False,
                            timeout=120).returncode == 0, 60, "the transfer")
        out, err = sink.communicate(timeout=60)
        n, secs = out.split()
        assert int(n) == nbytes, err
        return int(n) * 8 / float(secs) / 1e6
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait(5)


def test_nic_bandwidth_limit_with_real_packets(lab: Lab) -> None:
    """server-change-bandwidth: the guest's port is shaped both ways (tbf on its port, and on the
    port's ifb for what the guest sends), measured with a bounded transfer; 0 lifts it; a port that
    comes back (the guest started again, a new tap) is limited again."""
    ctl, tag = lab.ctl, lab.tag
    a, b = create(lab, f"cmn-qa-{tag}"), create(lab, f"cmn-qb-{tag}")  # both in Default: they may talk
    lab.plug(a)
    lab.plug(b)
    tap = tap_name(a["id"], 0)

    def qdiscs() -> str:
        return sh("ip", "netns", "exec", lab.host_ns, "tc", "qdisc", "show", "dev", tap).stdout

    wait_for(lambda: lab.ping(a, b), 60, "a -> b")
    free = mbps(lab, a, b, 7001, 4_000_000)
    limit = 20
    r = ctl.climc("server-change-bandwidth", a["id"], "0", str(limit), "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["nics"][0]["bw_limit"] == limit
    wait_for(lambda: "tbf" in qdiscs() and "ingress" in qdiscs(), 60, "the limit on a's port")
    down = mbps(lab, b, a, 7002, 5_000_000)  # towards a: shaped
    up = mbps(lab, a, b, 7003, 5_000_000)  # from a: shaped on the port's ifb
    print(f"bw_limit {limit} Mbit/s: towards the guest {down:.1f}, from it {up:.1f}; unlimited {free:.0f}")
    assert free > 2 * limit, f"the unlimited path is too slow to tell ({free:.1f} Mbit/s)"
    assert abs(down - limit) <= 0.15 * limit, down
    assert abs(up - limit) <= 0.15 * limit, up
    # bad input: one readable line, the limit unchanged
    for args in (("0", "-5"), ("7", "10"), ("zz", "10")):
        r = ctl.climc("server-change-bandwidth", a["id"], *args)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    # the guest's port re-created (a start, a hot-plug): limited again once the host hears of it
    lab.plug(a)  # (a periodic sync may get there first: either way it must come back)
    assert ctl.climc("server-stop", a["id"]).returncode == 0
    wait_for(lambda: server(ctl, a["id"])["status"] == "ready", 60, "a stopped")
    assert ctl.climc("server-start", a["id"]).returncode == 0
    wait_for(lambda: "tbf" in qdiscs(), 60, "the limit back on the new port")
    # 0 lifts it
    assert ctl.climc("server-change-bandwidth", a["id"], a["nics"][0]["mac"], "0").returncode == 0
    wait_for(lambda: "tbf" not in qdiscs() and "ingress" not in qdiscs(), 60, "the limit gone")


def test_eip_and_security_group_follow_a_migration_to_another_host(lab: Lab, tmp_path_factory: pytest.TempPathFactory
                                                                   ) -> None:
    """Two hosts, each its agent and its own nftables (its own namespace): a server made with
    --eip-bw on host A has its chains and NAT there only; migrated to host B, both agents re-pull:
    A's chains and NAT are gone, B's are there, and real packets reach the guest on B through the
    EIP (and leave with it) where they reached it on A before."""
    ctl, tag = lab.ctl, lab.tag
    host_b = f"cmnh2{tag}"
    outside = f"cmnm{tag}"
    pub = f"cmn-mig-{tag}"
    agent_b = None
    try:
        sh("ip", "netns", "add", host_b)
        sh("ip", "-n", host_b, "link", "add", "cmnbr", "type", "bridge")
        sh("ip", "-n", host_b, "link", "set", "cmnbr", "up")
        agent_b = AgentProc.join(ctl, tmp_path_factory.mktemp("cmn-b") / "agent", f"cmnb-{tag}", settings={
            "firewall": "nft", "firewall_netns": host_b, "firewall_table": TABLE})
        agent_b.start()
        # outside: one link to each host; the EIP is routed to whichever host holds it
        sh("ip", "netns", "add", outside)
        sh("ip", "-n", outside, "link", "set", "lo", "up")
        for host_ns, up, dev, net in ((lab.host_ns, "cmnua", "eth0", "198.51.100"), (host_b, "cmnub", "eth1",
                                                                                     "198.51.102")):
            sh("ip", "-n", host_ns, "addr", "replace", "10.199.0.1/24", "dev", "cmnbr")  # the guests' gateway
            sh("ip", "-n", host_ns, "link", "add", up, "type", "veth", "peer", "name", dev, "netns", outside)
            sh("ip", "-n", host_ns, "addr", "add", f"{net}.1/24", "dev", up)
            sh("ip", "-n", host_ns, "link", "set", up, "up")
            sh("ip", "-n", outside, "addr", "add", f"{net}.2/24", "dev", dev)
            sh("ip", "-n", outside, "link", "set", dev, "up")
        assert ctl.climc("network-create", "default", f"cmn-mignet-{tag}", "192.0.2.10", "192.0.2.20", "24",
                         "--server-type", "eip").returncode == 0
        assert ctl.climc("secgroup-create", pub).returncode == 0
        for args in (("--protocol", "tcp", "--ports", "8080"), ("--protocol", "icmp"), ("--direction", "out")):
            assert ctl.climc("secgroup-rule-create", pub, *args).returncode == 0
        g = create(lab, f"cmn-m-{tag}", "--secgroup", pub, "--eip-bw", "50", "--host", lab.agent.cfg["host_name"])
        eip, gip = g["eip"], g["nics"][0]["ip_addr"]
        assert eip and g["host_id"] == lab.agent.host_id
        ns = lab.plug(g)
        sh("ip", "-n", ns, "route", "add", "default", "via", "10.199.0.1")
        nat = f"{eip} : {gip}"
        wait_for(lambda: nat in lab.ruleset() and chain(g, "in") in lab.ruleset(), 60, "g's chains and NAT on A")
        assert nat not in lab.ruleset(host_b) and chain(g, "src") not in lab.ruleset(host_b)
        sh("ip", "-n", outside, "route", "replace", f"{eip}/32", "via", "198.51.100.1")
        assert exchange(lab, ns, outside, eip, 8080) == ("198.51.100.2", gip)
        assert exchange(lab, outside, ns, "198.51.100.2", 9001)[0] == eip

        # stopped, migrated to B, started there (its port now on B's bridge)
        assert ctl.climc("server-stop", g["id"]).returncode == 0
        wait_for(lambda: server(ctl, g["id"])["status"] == "ready", 60, "g stopped")
        r = ctl.climc("server-migrate", g["id"], "--prefer-host", agent_b.cfg["host_name"])
        assert r.returncode == 0, r.stderr
        moved = wait_for(lambda: (s := server(ctl, g["id"]))["status"] == "ready" and not s["active_task_id"] and s,
                         60, "g migrated")
        assert moved["host_id"] == agent_b.host_id and moved["eip"] == eip
        wait_for(lambda: nat not in lab.ruleset() and chain(g, "in") not in lab.ruleset() and
                 chain(g, "src") not in lab.ruleset(), 60, "g's chains and NAT gone from A")
        wait_for(lambda: nat in lab.ruleset(host_b) and chain(g, "in") in lab.ruleset(host_b), 60,
                 "g's chains and NAT on B")
        assert ctl.climc("server-start", g["id"]).returncode == 0
        wait_for(lambda: server(ctl, g["id"])["status"] == "running", 60, "g running on B")
        lab.plug(g, host_b)
        sh("ip", "-n", ns, "route", "replace", "default", "via", "10.199.0.1")
        sh("ip", "-n", outside, "route", "replace", f"{eip}/32", "via", "198.51.102.1")
        assert exchange(lab, ns, outside, eip, 8080) == ("198.51.102.2", gip)
        assert exchange(lab, outside, ns, "198.51.102.2", 9002)[0] == eip
        # the group still decides on B: 8081 is not allowed in
        assert sh("ip", "netns", "exec", outside, "nc", "-z", "-w1", eip, "8081", check=False).returncode != 0
        assert ctl.climc("server-delete", "-f", "--delete-eip", g["id"]).returncode == 0
        wait_for(lambda: ctl.api.get(f"{B}/servers/{g['id']}").status_code == 404, 60, "g deleted")
        wait_for(lambda: nat not in lab.ruleset(host_b) and chain(g, "in") not in lab.ruleset(host_b), 60,
                 "g's chains and NAT gone from B")
    finally:
        if agent_b is not None:
            agent_b.stop()
        for n in (outside, host_b):
            sh("ip", "netns", "del", n, check=False)
