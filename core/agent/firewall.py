"""Security groups and anti-spoofing on the host's guest ports, with nftables.

    text = compile_ruleset(spec, "cloudpods_one", port_name)   # HostSecgroups -> one nft script
    fw = firewall_backend(cfg)       # NftFirewall (nft -f, optionally in a netns) or NoFirewall(reason)
    fw.apply(text)                   # atomic: the agent's tables are replaced in ONE nft transaction

Why two tables of the same name: the port a frame came in on is only known at the bridge layer
(family ``bridge``: anti-spoofing by port, and the port's id put in the packet mark), while
connection tracking of bridged IPv4 runs in family ``inet`` (br_netfilter hands bridged packets to
the IP hooks; the kernel's own bridge conntrack is often not built). The inet ``forward`` chain
sends a packet through the egress chain of the port it came from (by mark) and then the ingress
chain of the guest it goes to (by destination address): one chain per port and direction.

Verdicts: an allowed egress *returns* (the destination's ingress rules still apply), an allowed
ingress accepts; established/related flows are accepted first (stateful); what no rule allows
drops. Rules arrive sorted by the region (larger priority first, deny before allow).
"""
from __future__ import annotations

import functools
import ipaddress
import logging
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.hostapi.protocol import GuestPort, HostSecgroups, SecRule

log = logging.getLogger("cloudpods.agent.firewall")

MARK_BASE = 0x0C000000  # port ids live in the low 24 bits; the high byte says "marked by us"
PortName = Callable[[str, int], str]


def _chain(port: GuestPort, what: str) -> str:
    return f"p_{port.server_id.replace('-', '')}_{port.index}_{what}"


def _peer_set(sgid: str) -> str:
    return f"peer_{sgid.replace('-', '')}"


@functools.lru_cache(maxsize=4096)
def _spans(ports: str) -> tuple[str, ...]:
    """``22,80-443,100`` -> ("22", "80-443"): merged spans, one rule each. No anonymous sets:
    nft's time grows steeply with their number (2000 of them: seconds), and it refuses overlaps."""
    spans = []
    for item in ports.split(","):
        lo, _, hi = item.strip().partition("-")
        spans.append((int(lo), int(hi or lo)))
    merged: list[list[int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return tuple(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in merged)


@functools.lru_cache(maxsize=4096)
def _nets(cidrs: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(str(n) for n in ipaddress.collapse_addresses(ipaddress.ip_network(c, strict=False) for c in cidrs))


def _rules(r: SecRule, ingress: bool) -> list[str]:
    """One rule as nft rules: one per remote network and port span (the same verdict each)."""
    if r.matches_nothing:
        return []  # a peer group without guests: the rule matches no address
    side = "saddr" if ingress else "daddr"
    remotes = [f"ip {side} @{_peer_set(r.peer)} "] if r.peer else \
        [f"ip {side} {n} " for n in _nets(tuple(r.cidrs))] if r.cidrs else [""]
    if r.protocol in ("tcp", "udp"):
        protos = [f"{r.protocol} dport {p} " for p in _spans(r.ports)] if r.ports else [f"meta l4proto {r.protocol} "]
    elif r.protocol == "icmp":
        protos = ["meta l4proto icmp "]
    else:
        protos = [""]
    verdict = "drop" if r.action == "deny" else ("accept" if ingress else "return")
    return [f"{a}{b}{verdict}" for a in remotes for b in protos]


def _spoof_chain(port: GuestPort, mark: int) -> list[str]:
    """Bridge layer, frames the guest sends: its mark, then its MAC and IP or the frame drops."""
    lines = [f"meta mark set 0x{mark:08x}"]
    if port.src_mac_check:
        lines += [f"ether saddr != {port.mac} drop",
                  f"ether type arp arp saddr ether != {port.mac} drop"]
    if port.src_ip_check:
        lines += ["ether type ip ip saddr 0.0.0.0 udp sport 68 udp dport 67 return",  # DHCP before it has an address
                  f"ether type ip ip saddr != {port.ip} drop",
                  "ether type ip return",
                  "ether type arp arp saddr ip 0.0.0.0 return",  # address probes
                  f"ether type arp arp saddr ip != {port.ip} drop",
                  "ether type arp return",
                  "drop"]  # IPv6 and anything else: guests have IPv4 addresses only
    return lines


def _direction_chain(port: GuestPort, ingress: bool) -> list[str]:
    lines = ["ct state established,related accept", "ct state invalid drop"]
    if not ingress:
        lines.append("ip daddr 255.255.255.255 udp dport 67 return")  # DHCP to our server on the bridge
    d = "in" if ingress else "out"
    for r in port.rules:
        if r.direction == d:
            lines += _rules(r, ingress)
    lines.append("drop")
    return lines


@dataclass
class Compiled:
    text: str
    ports: int = 0
    enforced: int = 0
    rules: int = 0
    skipped: list[str] = field(default_factory=list)  # ports without a name on this host


def _block(w: list[str], name: str, lines: list[str]) -> None:
    w.append(f"  chain {name} {{")
    w.extend(f"    {x}" for x in lines)
    w.append("  }")


def compile_ruleset(spec: HostSecgroups, table: str, port_name: PortName) -> Compiled:
    """The whole nft script: both tables deleted and re-made in one transaction."""
    out = Compiled(text="")
    bridge: list[str] = []
    inet: list[str] = []
    src_map: list[str] = []
    mark_map: list[str] = []
    dst_map: list[str] = []
    seen_ifnames: set[str] = set()
    seen_ips: set[str] = set()
    for n, port in enumerate(spec.ports, start=1):
        ifname = port_name(port.server_id, port.index)
        if not ifname or ifname in seen_ifnames:
            out.skipped.append(f"{port.server_id}/{port.index}")
            continue
        seen_ifnames.add(ifname)
        out.ports += 1
        mark = MARK_BASE | n
        _block(bridge, _chain(port, "src"), _spoof_chain(port, mark) if port.src_ip_check or port.src_mac_check
               else [f"meta mark set 0x{mark:08x}"])
        src_map.append(f'"{ifname}" : jump {_chain(port, "src")}')
        if not port.enforce:
            continue
        out.enforced += 1
        for ingress, what in ((False, "out"), (True, "in")):
            lines = _direction_chain(port, ingress)
            out.rules += len(lines)
            _block(inet, _chain(port, what), lines)
        mark_map.append(f"0x{mark:08x} : jump {_chain(port, 'out')}")
        if port.ip not in seen_ips:  # one address, one guest port (IPAM guarantees it per network)
            seen_ips.add(port.ip)
            dst_map.append(f"{port.ip} : jump {_chain(port, 'in')}")
    w: list[str] = []
    for fam in ("bridge", "inet"):
        # "add" then "delete": the delete never fails, whether or not the table was there
        w += [f"add table {fam} {table}", f"delete table {fam} {table}"]
    w += [f"table bridge {table} {{", "  chain prerouting {",
          "    type filter hook prerouting priority -300; policy accept;"]
    if src_map:
        w.append("    iifname vmap { " + ", ".join(src_map) + " }")
    w.append("  }")
    w += bridge
    w += ["}", f"table inet {table} {{"]
    for sgid, ips in sorted(spec.peers.items()):
        if ips:
            w += [f"  set {_peer_set(sgid)} {{", "    type ipv4_addr",
                  "    elements = { " + ", ".join(sorted(set(ips))) + " }", "  }"]
    w += ["  chain forward {", "    type filter hook forward priority 0; policy accept;"]
    if mark_map:
        w.append("    meta mark vmap { " + ", ".join(mark_map) + " }")
    if dst_map:
        w.append("    ip daddr vmap { " + ", ".join(dst_map) + " }")
    w.append("  }")
    w += inet
    w.append("}")
    out.text = "\n".join(w) + "\n"
    return out


def removal(table: str) -> str:
    return "".join(f"add table {fam} {table}\ndelete table {fam} {table}\n" for fam in ("bridge", "inet"))


# --- backends ------------------------------------------------------------------------------------

class FirewallError(Exception):
    pass


class NoFirewall:
    """A host that cannot enforce (test:///, no nft, not root): says so, never pretends."""

    enforcing = False
    backend = "none"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def apply(self, text: str) -> None:
        return None

    def clear(self) -> None:
        return None


class NftFirewall:
    """``nft -f -`` (in network namespace ``netns`` when set): one atomic transaction per apply."""

    enforcing = True
    backend = "nftables"
    reason = ""

    def __init__(self, table: str, netns: str = "", nft: str = "nft") -> None:
        self.table, self.netns, self.nft = table, netns, nft

    def _cmd(self, *args: str) -> list[str]:
        base = [self.nft, *args]
        return ["ip", "netns", "exec", self.netns, *base] if self.netns else base

    def apply(self, text: str) -> None:
        try:
            p = subprocess.run(self._cmd("-f", "-"), input=text, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FirewallError(f"nft: {exc}") from None
        if p.returncode != 0:
            raise FirewallError(f"nft refused the ruleset: {p.stderr.strip()[:1500]}")

    def clear(self) -> None:
        self.apply(removal(self.table))

    def listing(self) -> str:
        p = subprocess.run(self._cmd("list", "table", "inet", self.table), capture_output=True, text=True, timeout=60)
        q = subprocess.run(self._cmd("list", "table", "bridge", self.table), capture_output=True, text=True,
                           timeout=60)
        return p.stdout + q.stdout


def firewall_backend(mode: str, network_mode: str, table: str, netns: str = "") -> Any:
    """``mode`` auto: nftables where the agent runs real networking and can use nft, else none."""
    import os

    if mode == "none":
        return NoFirewall("the agent config says firewall: none")
    if mode == "auto" and network_mode != "host":
        return NoFirewall(f"network_mode {network_mode}: simulated guest ports, security groups are not enforced")
    nft = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    if nft is None:
        return NoFirewall("nft is not installed (apt-get install nftables): security groups are not enforced")
    if os.geteuid() != 0:
        return NoFirewall("the agent is not root: security groups are not enforced")
    if not _bridge_nf(netns):
        log.warning("net.bridge.bridge-nf-call-iptables could not be set: bridged traffic bypasses the rules")
    return NftFirewall(table, netns, nft)


def _bridge_nf(netns: str) -> bool:
    """Bridged IPv4 through the IP hooks (br_netfilter), where conntrack is (per network namespace)."""
    cmd = ["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


# --- the agent's loop: region -> nftables ------------------------------------------------------

class FirewallSync:
    """Pulls the host's security groups when told (``kick``) and applies them; never raises.

    Told by: agent start (reconcile), the long poll's ``secgroup_version`` moving, and the periodic
    sync (repairs a ruleset someone changed by hand)."""

    def __init__(self, backend: Any, table: str, fetch: Callable[[], HostSecgroups], port_name: PortName | None
                 ) -> None:
        import threading

        self.backend, self.table, self.fetch = backend, table, fetch
        self.port_name: PortName = port_name or (lambda sid, idx: "")
        self._kick = threading.Event()
        self.applied_version: int | None = None
        self.applied_at: float | None = None
        self.ports = self.enforced = 0
        self.error = ""
        self.compile_ms = self.apply_ms = 0.0
        self.applies = 0

    def kick(self) -> None:
        self._kick.set()

    def status(self) -> dict[str, Any]:
        return {"backend": self.backend.backend, "enforcing": self.backend.enforcing,
                "reason": self.backend.reason, "table": self.table, "applied_version": self.applied_version,
                "ports": self.ports, "enforced_ports": self.enforced, "error": self.error}

    def sync_once(self) -> bool:
        import time

        try:
            spec = self.fetch()
            t0 = time.perf_counter()
            c = compile_ruleset(spec, self.table, self.port_name)
            t1 = time.perf_counter()
            self.backend.apply(c.text)
            t2 = time.perf_counter()
        except Exception as exc:  # the loop goes on; the reason is what the host reports
            self.error = str(exc)[:500] or type(exc).__name__
            log.warning("security groups not applied: %s", self.error)
            return False
        changed = spec.version != self.applied_version
        self.applied_version, self.applied_at = spec.version, time.time()
        self.ports, self.enforced, self.error = c.ports, c.enforced, ""
        self.compile_ms, self.apply_ms = (t1 - t0) * 1000, (t2 - t1) * 1000
        self.applies += 1
        if changed:
            log.info("security groups v%d: %d port(s), %d enforced (compile %.1f ms, nft %.1f ms)%s", spec.version,
                     c.ports, c.enforced, self.compile_ms, self.apply_ms,
                     "" if self.backend.enforcing else f"; NOT enforced: {self.backend.reason}")
        return True

    def run(self, stop: Any, ready: Any) -> None:
        """The thread body: waits for ``ready`` (registered), then applies on every kick (≥ once a minute)."""
        while not ready.wait(0.5):
            if stop.is_set():
                return
        failures = 0
        while not stop.is_set():
            self._kick.clear()
            if self.sync_once():
                failures = 0
                self._kick.wait(60)
            else:
                failures += 1
                self._kick.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))
