"""Conformance of OUR DHCP server with three independent clients in network namespaces:
busybox udhcpc, ISC dhclient and dhcpcd (DISCOVER/OFFER/REQUEST/ACK, renew, NAK, unknown MAC)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from virt_peers import Lan, event_script, need_exe, read_events, wait_for

from core.agent.dhcp import DhcpServer, Lease
from tests.support.procs import stop_process

pytestmark = pytest.mark.full

MAC = "52:54:00:78:00:01"
IP = "10.213.78.50"


def lease(mac: str = MAC, ip: str = IP, lease_time: int = 600) -> Lease:
    return Lease(
        mac=mac,
        ip=ip,
        prefixlen=24,
        gateway="10.213.78.1",
        dns=("10.213.78.2", "10.213.78.3"),
        lease_time=lease_time,
        hostname="guest1",
    )


def ns_addrs(ns: str) -> list[str]:
    out = subprocess.run(
        ["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [f.split()[3] for f in out.splitlines()]


def kinds(srv: DhcpServer, mac: str = MAC) -> list[str]:
    return [e.kind + (f":{e.detail}" if e.kind == "request" else "") for e in srv.events if e.mac == mac]


def udhcpc(ns: str, script: Path, *flags: str) -> list[str]:
    """busybox udhcpc on eth0 in the client's namespace ``ns``, reporting through ``script``."""
    return ["ip", "netns", "exec", ns, "busybox", "udhcpc", "-i", "eth0", *flags, "-s", str(script)]


def udhcpc_once(ns: str, script: Path, *, tries: str, wait_s: str) -> subprocess.CompletedProcess[str]:
    """One udhcpc run in the foreground: it exits 0 with a lease, or 1 after ``tries`` DISCOVERs
    ``wait_s`` apart that nobody answered."""
    return subprocess.run(udhcpc(ns, script, "-n", "-q", "-f", "-t", tries, "-T", wait_s), capture_output=True,
                          text=True, timeout=30, check=False)


# --- busybox udhcpc ---------------------------------------------------------------------------


def test_udhcpc_gets_exactly_the_lease(lan: Lan, tmp_path: Path) -> None:
    need_exe("busybox")
    ns = lan.add_client(MAC)
    script, log = event_script(tmp_path)
    with DhcpServer(lan.bridge, [lease()]) as srv:
        r = udhcpc_once(ns, script, tries="5", wait_s="2")
        assert r.returncode == 0, r.stderr
        bound = [e for e in read_events(log) if e["_arg"] == "bound"]
        assert len(bound) == 1
        b = bound[0]
        assert (b["ip"], b["mask"], b["router"], b["dns"].split(), b["lease"], b["serverid"]) == (
            IP,
            "24",
            "10.213.78.1",
            ["10.213.78.2", "10.213.78.3"],
            "600",
            "10.213.78.1",
        )
        assert ns_addrs(ns) == [f"{IP}/24"]
        assert kinds(srv) == ["discover", "offer", "request:selecting", "ack"]


def test_udhcpc_renew_and_release(lan: Lan, tmp_path: Path) -> None:
    need_exe("busybox")
    ns = lan.add_client(MAC)
    script, log = event_script(tmp_path)
    with DhcpServer(lan.bridge, [lease()]) as srv:
        p = subprocess.Popen(
            udhcpc(ns, script, "-f", "-R", "-t", "5", "-T", "2"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: any(e["_arg"] == "bound" for e in read_events(log)), 60, "udhcpc bound")
            p.send_signal(signal.SIGUSR1)  # udhcpc: renew now (unicast REQUEST from the bound address)
            wait_for(lambda: any(e["_arg"] == "renew" for e in read_events(log)), 60, "udhcpc renew")
            assert [e["ip"] for e in read_events(log) if e["_arg"] in ("bound", "renew")] == [IP, IP]
            assert srv.responder.bindings()[MAC].ip == IP
        finally:
            stop_process(p)  # -R: release on exit
        wait_for(lambda: "release" in kinds(srv), 60, "DHCPRELEASE")
        k = kinds(srv)
        assert k[:4] == ["discover", "offer", "request:selecting", "ack"] and k[-1] == "release"
        renewals = k[4:-1]  # udhcpc may repeat its renewal REQUEST; each one is ACKed
        assert renewals and renewals == ["request:renewing", "ack"] * (len(renewals) // 2)
        assert srv.responder.bindings() == {}


def test_unknown_mac_is_ignored(lan: Lan, tmp_path: Path) -> None:
    need_exe("busybox")
    stranger = "52:54:00:78:00:99"
    ns = lan.add_client(stranger)
    script, log = event_script(tmp_path)
    with DhcpServer(lan.bridge, [lease()]) as srv:
        r = udhcpc_once(ns, script, tries="2", wait_s="1")
        assert r.returncode != 0  # no lease: nobody answered
        assert not [e for e in read_events(log) if e["_arg"] == "bound"]
        seen = [e for e in srv.events if e.mac == stranger]
        assert seen and {e.kind for e in seen} == {"ignored"}
        assert ns_addrs(ns) == []


def test_mapping_changes_at_runtime(lan: Lan, tmp_path: Path) -> None:
    need_exe("busybox")
    ns = lan.add_client(MAC)
    script, log = event_script(tmp_path)
    with DhcpServer(lan.bridge, []) as srv:
        assert udhcpc_once(ns, script, tries="2", wait_s="1").returncode != 0
        srv.set_lease(lease(ip="10.213.78.61"))
        assert udhcpc_once(ns, script, tries="2", wait_s="1").returncode == 0
        assert [e["ip"] for e in read_events(log) if e["_arg"] == "bound"] == ["10.213.78.61"]


# --- ISC dhclient -----------------------------------------------------------------------------


def dhclient(ns: str, tmp_path: Path, script: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns,
            "dhclient",
            "-4",
            "-1",
            "-d",
            "-sf",
            str(script),
            "-lf",
            str(tmp_path / "dhclient.leases"),
            "-pf",
            str(tmp_path / "dhclient.pid"),
            "eth0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_dhclient_lease_and_renew(lan: Lan, tmp_path: Path) -> None:
    need_exe("dhclient")
    ns = lan.add_client(MAC)
    script, log = event_script(tmp_path)
    with DhcpServer(lan.bridge, [lease(lease_time=10)]) as srv:  # T1 = 5 s: watch a real renewal
        p = dhclient(ns, tmp_path, script)
        try:
            wait_for(
                lambda: [e for e in read_events(log) if e.get("reason") == "BOUND"], 60, "dhclient BOUND"
            )
            b = next(e for e in read_events(log) if e.get("reason") == "BOUND")
            assert (
                b["new_ip_address"],
                b["new_subnet_mask"],
                b["new_routers"],
                b["new_domain_name_servers"],
                b["new_dhcp_lease_time"],
            ) == (IP, "255.255.255.0", "10.213.78.1", "10.213.78.2 10.213.78.3", "10")
            wait_for(
                lambda: [e for e in read_events(log) if e.get("reason") == "RENEW"], 60, "dhclient RENEW"
            )
            renew = next(e for e in read_events(log) if e.get("reason") == "RENEW")
            assert renew["new_ip_address"] == IP
        finally:
            stop_process(p)
        assert kinds(srv)[:5] == ["discover", "offer", "request:selecting", "ack", "request:renewing"]


def test_dhclient_foreign_address_gets_nak(lan: Lan, tmp_path: Path) -> None:
    need_exe("dhclient")
    ns = lan.add_client(MAC)
    script, log = event_script(tmp_path)
    # a remembered lease for an address that is not this guest's: dhclient starts in INIT-REBOOT
    (tmp_path / "dhclient.leases").write_text(
        'lease {\n  interface "eth0";\n  fixed-address 10.213.78.99;\n  option subnet-mask 255.255.255.0;\n'
        "  option dhcp-server-identifier 10.213.78.1;\n  renew 4 2037/01/01 00:00:01;\n"
        "  rebind 4 2037/01/01 00:00:01;\n  expire 4 2037/01/01 00:00:01;\n}\n"
    )
    with DhcpServer(lan.bridge, [lease()]) as srv:
        p = dhclient(ns, tmp_path, script)
        try:
            wait_for(
                lambda: [e for e in read_events(log) if e.get("reason") == "BOUND"], 60, "dhclient BOUND"
            )
        finally:
            stop_process(p)
        events = [(e.kind, e.ip) for e in srv.events if e.mac == MAC]
        assert events[:2] == [("request", "10.213.78.99"), ("nak", IP)]
        assert ("ack", IP) in events[2:]
        b = next(e for e in read_events(log) if e.get("reason") == "BOUND")
        assert b["new_ip_address"] == IP


# --- dhcpcd -----------------------------------------------------------------------------------


def test_dhcpcd_gets_exactly_the_lease(lan: Lan, tmp_path: Path) -> None:
    need_exe("dhcpcd")
    ns = lan.add_client(MAC)
    script, log = event_script(tmp_path)
    with DhcpServer(lan.bridge, [lease()]) as srv:
        # -r asks for a different address in the DISCOVER: the server still offers only the lease
        r = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                ns,
                "dhcpcd",
                "-4",
                "-1",
                "-B",
                "--noarp",
                "-f",
                "/dev/null",
                "-r",
                "10.213.78.98",
                "-t",
                "20",
                "-c",
                str(script),
                "eth0",
            ],
            capture_output=True,
            text=True,
            timeout=40,
            check=False,
        )
        assert r.returncode == 0, r.stderr
        bound = [e for e in read_events(log) if e.get("reason") == "BOUND"]
        assert bound, read_events(log)
        assert (bound[0]["new_ip_address"], bound[0]["new_subnet_cidr"]) == (IP, "24")
        assert f"{IP}/24" in ns_addrs(ns)
        assert kinds(srv)[-2:] == ["request:selecting", "ack"] and "offer" in kinds(srv)
        subprocess.run(
            ["ip", "netns", "exec", ns, "dhcpcd", "-x", "eth0"], capture_output=True, timeout=10, check=False
        )
