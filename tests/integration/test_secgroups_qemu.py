"""Security groups on a real qemu guest (issue 16), as root: a controller, a real agent on qemu:///system
with host networking and its nftables firewall on (its own table), and the busybox guest of
scripts/setup-virt.sh (udhcpc from our DHCP; its Linux kernel answers ICMP echo by itself).

A network namespace plugged into the guests' bridge pings the guest through its tap, so every packet
crosses the bridge and the agent's rules (bridged IPv4 goes through the inet ``forward`` hook):
the group's icmp rule lets it in, the rule deleted drops it within a bounded time (measured and
printed), the rule created again lets it in again. Everything is prefixed ``cmq`` plus a random tag.
"""
from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from drivers.kvm.instances import tap_name
from tests.e2e.test_agent_support import B, server, wait_for
from tests.integration.test_agent_real import real_cloud_on, upload_tiny_guest
from tests.support.guests import destroy_domains
from tests.support.peers import need_binary, need_root

pytestmark = pytest.mark.full

PREFIX = "10.213.86"  # realnet: .10-.50 for guests, .1 the bridge; the namespace is .5 (allowed) and .6 (not)
DROP_BOUND_S = 10.0  # the promise is 1 s (bench/secgroups_apply.py); the bound leaves room for a loaded CI box


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {p.stderr.strip()}")
    return p


def test_a_rule_revoked_drops_real_packets_to_a_qemu_guest_and_allowed_again_when_it_comes_back(
        tmp_path: Path) -> None:
    need_root()
    need_binary("nft", "nftables")
    need_binary("ping", "iputils-ping")
    tag = uuid.uuid4().hex[:5]
    bridge, ns, veth, table = f"cmqbr{tag}", f"cmqn{tag}", f"cmqv{tag}", f"cmq_{tag}"
    sg, vm = f"cmq-sg-{tag}", f"cmq-vm-{tag}"
    try:
        with real_cloud_on(tmp_path, bridge, PREFIX, {"firewall": "nft", "firewall_table": table}) as (ctl, agent):
            sid = ""
            try:
                upload_tiny_guest(ctl, tmp_path, f"cmq-img-{tag}", "console=ttyS0 panic=-1 cm.net cm.stay")
                assert ctl.climc("secgroup-create", sg).returncode == 0
                rule = ("--protocol", "icmp", "--cidr", f"{PREFIX}.5/32", "--priority", "10", "-o", "json")
                r = ctl.climc("secgroup-rule-create", sg, *rule)
                assert r.returncode == 0, r.stderr
                rid = json.loads(r.stdout)["id"]
                r = ctl.climc("server-create", vm, "--disk", f"cmq-img-{tag}", "--net", "realnet", "--ncpu", "1",
                              "--mem-spec", "256m", "--secgroup", sg, "--auto-start", "-o", "json")
                assert r.returncode == 0, r.stderr
                sid = json.loads(r.stdout)["id"]
                s = wait_for(lambda: (x := server(ctl, sid))["status"] in ("running", "deploy_fail") and x, 240,
                             "deployed")
                assert s["status"] == "running", agent.log_path.read_text()[-3000:]
                ip = s["ips"]
                serial = agent.data / "instances" / sid / "serial.log"

                def console() -> str:
                    return serial.read_text(errors="replace") if serial.exists() else ""

                wait_for(lambda: "CM-MARKER: staying up" in console(), 300, "the guest up after its DHCP")
                assert "CM-DHCP-OK: " in console() and f"inet {ip}/24" in console(), console()[-2000:]
                tap = tap_name(sid, 0)
                assert Path(f"/sys/class/net/{bridge}/brif/{tap}").exists(), "the guest's tap on the bridge"
                wait_for(lambda: f"{ip} : jump g_" in sh("nft", "list", "table", "inet", table).stdout, 60,
                         "the guest's ingress chain in the agent's table")

                # a peer on the guests' bridge: .5 is what the rule allows, .6 is not
                sh("ip", "netns", "add", ns)
                sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
                sh("ip", "link", "set", veth, "master", bridge, "up")
                sh("ip", "-n", ns, "link", "set", "lo", "up")
                sh("ip", "-n", ns, "addr", "add", f"{PREFIX}.5/24", "dev", "eth0")
                sh("ip", "-n", ns, "addr", "add", f"{PREFIX}.6/24", "dev", "eth0")
                sh("ip", "-n", ns, "link", "set", "eth0", "up")

                def ping(src: str = f"{PREFIX}.5") -> bool:
                    # a new process per probe: a new ICMP id, so a new flow that the rules judge afresh
                    return sh("ip", "netns", "exec", ns, "ping", "-c1", "-W2", "-I", src, ip,
                              check=False).returncode == 0

                def icmp_rule_in_kernel() -> bool:
                    return "icmp" in sh("nft", "list", "table", "inet", table).stdout

                assert wait_for(ping, 60, "the allowed peer pings the guest"), agent.log_path.read_text()[-3000:]
                assert not ping(f"{PREFIX}.6"), "the rule allows .5/32 only: .6 must drop"

                # revoked: dropped within the bound. Dropped = two probes in a row fail (one lost reply
                # on a loaded box is not a drop); the time is when the first of them started
                t0 = time.monotonic()
                r = ctl.climc("secgroup-rule-delete", rid)
                assert r.returncode == 0, r.stderr
                t1 = time.monotonic()
                streak: list[float] = []
                kernel_at = None
                while time.monotonic() - t1 < 60 and len(streak) < 2:
                    if kernel_at is None and not icmp_rule_in_kernel():
                        kernel_at = time.monotonic() - t1
                    started = time.monotonic()
                    streak = [] if ping() else [*streak, started]
                assert len(streak) == 2, "the guest still answers 60 s after the rule was deleted"
                dropped = max(streak[0], t1) - t0  # from the user's command, climc's own start-up included
                print(f"secgroup-rule-delete took {1000 * (t1 - t0):.0f} ms; after it returned: nftables changed at "
                      f"{1000 * (kernel_at or 0):.0f} ms, packets to the qemu guest dropped at "
                      f"{1000 * (streak[0] - t1):.0f} ms; {1000 * dropped:.0f} ms from the command's start")
                assert dropped <= DROP_BOUND_S, dropped
                assert not icmp_rule_in_kernel()

                # the rule back: allowed again
                t2 = time.monotonic()
                r = ctl.climc("secgroup-rule-create", sg, *rule)
                assert r.returncode == 0, r.stderr
                wait_for(ping, 60, "the guest answering again once the rule is back")
                print(f"rule created again -> the guest answers {1000 * (time.monotonic() - t2):.0f} ms "
                      "from the command's start")
                assert not ping(f"{PREFIX}.6")
            finally:
                sh("ip", "netns", "del", ns, check=False)
                if sid:
                    ctl.climc("server-delete", "-f", sid)
                    try:
                        wait_for(lambda: ctl.api.get(f"{B}/servers/{sid}").status_code == 404, 90, "the guest deleted")
                    finally:
                        destroy_domains("qemu:///system", [sid])  # whatever the agent did not get to
    finally:
        for family in ("inet", "bridge"):  # a stopped agent leaves its guests protected: the test's table goes
            sh("nft", "delete", "table", family, table, check=False)
