"""Security groups and anti-spoofing on the host's guest ports, with nftables.

    text = compile_ruleset(spec, "cloudpods_one", port_name)   # HostSecgroups -> one nft script
    fw = firewall_backend(cfg)       # NftFirewall (libnftables / nft -f, optionally in a netns) or NoFirewall(reason)
    fw.apply(text)                   # atomic: the agent's tables are replaced in ONE nft transaction

Why two tables of the same name: the port a frame came in on is only known at the bridge layer
(family ``bridge``: anti-spoofing by port, and the port's id put in the packet mark), while
connection tracking of bridged IPv4 runs in family ``inet`` (br_netfilter hands bridged packets to
the IP hooks; the kernel's own bridge conntrack is often not built). The inet ``forward`` chain
sends a packet through the egress chain of the port it came from (by mark) and then the ingress
chain of the guest it goes to (by destination address).

Why per-port data lives in sets and maps, not in rules: the kernel's cost of a transaction grows
with its rules (each expression is looked up by name), set elements are cheap. So anti-spoofing is
a few fixed rules looking a port's MAC and address up in sets, and a guest's rules live in a chain
named after its content: guests whose security groups give the same rules share one chain (the
usual case: a host's guests are in a handful of groups); only the maps say which port uses which.

Verdicts: established/related flows are accepted first (stateful); an allowed egress *returns* (the
destination's ingress rules still apply), an allowed ingress accepts; what no rule allows drops.
Rules arrive sorted by the region (larger priority first, deny before allow).
"""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.host_protocol import HostSecgroups, SecRule

log = logging.getLogger("cloudpods.agent.firewall")

MARK_BASE = 0x0C000000  # port ids live in the low 24 bits; the high byte says "marked by us"
PortName = Callable[[str, int], str]


def _peer_set(sgid: str) -> str:
    return f"peer_{sgid.replace('-', '')}"


@functools.lru_cache(maxsize=65536)
def _spans(ports: str) -> tuple[str, ...]:
    """``22,80-443,100`` -> ("22", "80-443"): merged spans, one rule each. No anonymous sets:
    nft's time grows steeply with their number (2000 of them: seconds), and it refuses overlaps."""
    spans: list[tuple[int, int]] = []
    for item in ports.split(","):
        first, _, last = item.strip().partition("-")
        spans.append((int(first), int(last or first)))
    merged: list[list[int]] = []
    for lo, hi in sorted(spans):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return tuple(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in merged)


@functools.lru_cache(maxsize=65536)
def _nets(cidrs: tuple[str, ...]) -> tuple[str, ...]:
    # collapsed per address family (collapse_addresses refuses a mix)
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    return tuple(str(n) for n in [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)])


@functools.lru_cache(maxsize=65536)
def _rule_lines(direction: str, action: str, protocol: str, ports: str, cidrs: tuple[str, ...], peer: str
                ) -> tuple[str, ...]:
    """One rule as nft rules: one per remote network and port span (the same verdict each). Cached:
    a host's guests mostly share their groups' rules, and a repair compiles the same rules again."""
    ingress = direction == "in"
    side = "saddr" if ingress else "daddr"
    remotes = [f"ip {side} @{_peer_set(peer)} "] if peer else \
        [f"ip {side} {n} " for n in _nets(cidrs)] if cidrs else [""]
    if protocol in ("tcp", "udp"):
        protos = [f"{protocol} dport {p} " for p in _spans(ports)] if ports else [f"meta l4proto {protocol} "]
    elif protocol == "icmp":
        protos = ["meta l4proto icmp "]
    else:
        protos = [""]
    verdict = "drop" if action == "deny" else ("accept" if ingress else "return")
    return tuple(f"{a}{b}{verdict}" for a in remotes for b in protos)


def _direction_chain(rules: list[SecRule], direction: str, peers: frozenset[str] | set[str]) -> tuple[str, ...]:
    lines = ["ct state invalid drop"]  # established/related: accepted in the forward chain already
    for r in rules:
        if r.direction == direction and not r.matches_nothing and (not r.peer or r.peer in peers):
            # (a peer group without guests: the rule matches no address)
            lines += _rule_lines(r.direction, r.action, r.protocol, r.ports, tuple(r.cidrs), r.peer)
    lines.append("drop")
    return tuple(lines)


def _chain_name(lines: tuple[str, ...]) -> str:
    """A chain named after its rules: the same rules, the same chain (shared by every port with them)."""
    return "g_" + hashlib.blake2b("\n".join(lines).encode(), digest_size=8).hexdigest()


@dataclass
class Plan:
    """What the agent's two tables hold, as data: the full script and the delta between two plans
    are both rendered from it (chains by (family, name); map and set elements by (family, name))."""

    chains: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    maps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # key -> value
    sets: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)  # peer groups, eip_local, ports
    marks: dict[str, int] = field(default_factory=dict)  # port key -> its mark (stable across plans)
    limits: dict[str, int] = field(default_factory=dict)  # port name -> bw_limit (Mbps, 0: none): tc, not nft
    ports: int = 0
    enforced: int = 0
    rules: int = 0  # nft rules in the guests' chains (shared chains counted once)
    eips: int = 0
    skipped: list[str] = field(default_factory=list)  # ports without a name on this host


@dataclass
class Compiled:
    text: str
    ports: int = 0
    enforced: int = 0
    rules: int = 0
    skipped: list[str] = field(default_factory=list)


# the maps every ruleset declares (family, name, declaration); the base chains look ports up in them
_MAPS = (("bridge", "port_marks", "type ifname : mark"), ("bridge", "port_checks", "type ifname : verdict"),
         ("inet", "marks", "type mark : verdict"), ("inet", "dsts", "type ipv4_addr : verdict"),
         ("inet", "eip_dnat", "type ipv4_addr : ipv4_addr"), ("inet", "eip_snat", "type ipv4_addr : ipv4_addr"))
# the sets every ruleset declares; peer groups' sets (inet, "type ipv4_addr;") come and go with their guests
_SETS = {("bridge", "port_mac"): "type ifname . ether_addr;",  # a port's own MAC
         ("bridge", "port_ip"): "type ifname . ipv4_addr;",  # a port's own address
         ("inet", "eip_local"): "type ipv4_addr; flags interval;"}  # guest networks: not SNATed to the EIP
_INTERVAL = {("inet", "eip_local")}  # changed as a whole (its elements are collapsed networks)
# anti-spoofing per port: which checks (src_mac_check, src_ip_check) -> the chain doing them
_CHECKS = {(True, True): "check_mac_ip", (True, False): "check_mac", (False, True): "check_ip"}
_BASE = {
    "bridge": ["  chain prerouting {", "    type filter hook prerouting priority -300; policy accept;",
               "    meta mark set iifname map @port_marks", "    iifname vmap @port_checks", "  }",
               "  chain check_mac {", "    iifname . ether saddr != @port_mac drop",
               "    ether type arp iifname . arp saddr ether != @port_mac drop", "  }",
               "  chain check_ip {",
               "    ether type ip ip saddr 0.0.0.0 udp sport 68 udp dport 67 return",  # DHCP before it has one
               "    ether type ip iifname . ip saddr != @port_ip drop", "    ether type ip return",
               "    ether type arp arp saddr ip 0.0.0.0 return",  # address probes
               "    ether type arp iifname . arp saddr ip != @port_ip drop", "    ether type arp return",
               "    drop", "  }",  # IPv6 and anything else: guests have IPv4 addresses only
               "  chain check_mac_ip {", "    jump check_mac", "    jump check_ip", "  }"],
    "inet": ["  chain forward {", "    type filter hook forward priority 0; policy accept;",
             "    ct state established,related accept",
             "    ip daddr 255.255.255.255 udp dport 67 accept",  # DHCP to our server on the bridge
             "    meta mark vmap @marks", "    ip daddr vmap @dsts", "  }",
             # EIPs: traffic to the EIP goes to the guest (its ingress rules still apply in forward), and
             # the guest's traffic leaving its own network leaves with the EIP (replies: conntrack)
             "  chain eip_pre {", "    type nat hook prerouting priority dstnat; policy accept;",
             "    dnat ip to ip daddr map @eip_dnat", "  }",
             "  chain eip_post {", "    type nat hook postrouting priority srcnat; policy accept;",
             "    ip daddr != @eip_local snat ip to ip saddr map @eip_snat", "  }"],
}


def _set_decl(key: tuple[str, str]) -> str:
    return _SETS.get(key, "type ipv4_addr;")


def _block(w: list[str], name: str, lines: Iterable[str]) -> None:
    w.append(f"  chain {name} {{")
    w.extend(f"    {x}" for x in lines)
    w.append("  }")


def removal(table: str) -> str:
    return "".join(f"add table {fam} {table}\ndelete table {fam} {table}\n" for fam in ("bridge", "inet"))


def _mark_of(key: str, taken: set[int]) -> int:
    """A port's mark from its key (stable across applies and agent restarts), probing on collision."""
    n = int(hashlib.sha1(key.encode()).hexdigest()[:6], 16) or 1
    while n in taken or n == 0:
        n = (n + 1) & 0xFFFFFF
    taken.add(n)
    return n


def build_plan(spec: HostSecgroups, port_name: PortName, marks: dict[str, int] | None = None) -> Plan:
    """``spec`` as a Plan; ``marks`` (the previous plan's) keep the marks of ports that stay."""
    out = Plan()
    for fam, name, _ in _MAPS:
        out.maps[(fam, name)] = {}
    port_marks, port_checks = out.maps[("bridge", "port_marks")], out.maps[("bridge", "port_checks")]
    mark_map, dsts = out.maps[("inet", "marks")], out.maps[("inet", "dsts")]
    macs: list[str] = []
    ips: list[str] = []
    keys = [f"{p.server_id.replace('-', '')}_{p.index}" for p in spec.ports]
    prev = marks or {}
    taken = {prev[k] for k in keys if k in prev}
    seen_ifnames: set[str] = set()
    peers = {sgid for sgid, addrs in spec.peers.items() if addrs}
    chains: dict[tuple[str, ...], str] = {}  # a chain's rules -> its name
    for key, port in zip(keys, spec.ports, strict=True):
        ifname = port_name(port.server_id, port.index)
        if not ifname or ifname in seen_ifnames or key in out.marks:
            out.skipped.append(f"{port.server_id}/{port.index}")
            continue
        seen_ifnames.add(ifname)
        out.ports += 1
        out.limits[ifname] = port.bw_limit
        n = prev.get(key) or _mark_of(key, taken)
        out.marks[key] = n
        mark = f"0x{MARK_BASE | n:08x}"
        q = f'"{ifname}"'
        port_marks[q] = mark
        check = _CHECKS.get((port.src_mac_check, port.src_ip_check))
        if check:
            port_checks[q] = f"jump {check}"
            if port.src_mac_check:
                macs.append(f"{q} . {port.mac}")
            if port.src_ip_check:
                ips.append(f"{q} . {port.ip}")
        if not port.enforce:
            continue
        out.enforced += 1
        for direction in ("out", "in"):
            lines = _direction_chain(port.rules, direction, peers)
            chain = chains.get(lines)
            if chain is None:
                chain = chains[lines] = _chain_name(lines)
                out.chains[("inet", chain)] = lines
                out.rules += len(lines)
            if direction == "out":
                mark_map[mark] = f"jump {chain}"
            elif port.ip not in dsts:  # one address, one guest port (IPAM guarantees it per network)
                dsts[port.ip] = f"jump {chain}"
    out.sets[("bridge", "port_mac")] = tuple(macs)
    out.sets[("bridge", "port_ip")] = tuple(ips)
    for sgid, addrs in spec.peers.items():
        if addrs:
            out.sets[("inet", _peer_set(sgid))] = tuple(sorted(set(addrs), key=ipaddress.IPv4Address))
    local = []
    for e in spec.eips:
        if e.eip in out.maps[("inet", "eip_dnat")] or e.ip in out.maps[("inet", "eip_snat")]:
            continue  # one EIP per address and back (the region guarantees it)
        out.maps[("inet", "eip_dnat")][e.eip] = e.ip
        out.maps[("inet", "eip_snat")][e.ip] = e.eip
        local.append(e.cidr)
        out.eips += 1
    out.sets[("inet", "eip_local")] = _nets(tuple(sorted(set(local))))
    return out


def _elements(items: Iterable[str]) -> str:
    return "{ " + ", ".join(items) + " }"


def _pairs(m: dict[str, str], keys: Iterable[str]) -> list[str]:
    return [f"{k} : {m[k]}" for k in keys]


def render_full(plan: Plan, table: str) -> str:
    """The whole nft script: both tables deleted and re-made in one transaction."""
    w: list[str] = []
    for fam in ("bridge", "inet"):
        # "add" then "delete": the delete never fails, whether or not the table was there
        w += [f"add table {fam} {table}", f"delete table {fam} {table}"]
    for fam in ("bridge", "inet"):
        w.append(f"table {fam} {table} {{")
        for (sfam, name), elems in sorted(plan.sets.items()):
            if sfam == fam:
                w += [f"  set {name} {{", f"    {_set_decl((sfam, name))}"]
                if elems:
                    w.append(f"    elements = {_elements(elems)}")
                w.append("  }")
        for mfam, name, decl in _MAPS:
            if mfam == fam:
                m = plan.maps[(fam, name)]
                w += [f"  map {name} {{", f"    {decl};"]
                if m:
                    w.append(f"    elements = {_elements(_pairs(m, m))}")
                w.append("  }")
        w += _BASE[fam]
        for (cfam, name), lines in plan.chains.items():
            if cfam == fam:
                _block(w, name, lines)
        w.append("}")
    return "\n".join(w) + "\n"


def render_delta(old: Plan, new: Plan, table: str) -> str:
    """One transaction turning ``old`` into ``new``: only the chains and elements that differ.
    Order matters inside it: elements stop naming a chain before it goes and start after it
    comes, a set a rule names comes before the rule and goes after it."""
    w: list[str] = []
    adds: list[str] = []
    for (fam, name), m in new.maps.items():
        o = old.maps.get((fam, name), {})
        gone = [k for k in o if m.get(k) != o[k]]
        come = [k for k in m if o.get(k) != m[k]]
        if gone:
            w.append(f"delete element {fam} {table} {name} {_elements(gone)}")
        if come:
            adds.append(f"add element {fam} {table} {name} {_elements(_pairs(m, come))}")
    for key, lines in old.chains.items():
        if key not in new.chains:
            w.append(f"delete chain {key[0]} {table} {key[1]}")
        elif new.chains[key] != lines:
            w.append(f"flush chain {key[0]} {table} {key[1]}")
    changed = [k for k, lines in new.chains.items() if old.chains.get(k) != lines]
    for (fam, name), elems in new.sets.items():
        had = old.sets.get((fam, name))
        if had is None:
            w.append(f"add set {fam} {table} {name} {{ {_set_decl((fam, name))} }}")
            had = ()
        elif had == elems:
            continue
        elif (fam, name) in _INTERVAL:
            w.append(f"flush set {fam} {table} {name}")
            had = ()
        have, want = set(had), set(elems)
        gone_e = [e for e in had if e not in want]
        come_e = [e for e in elems if e not in have]
        if gone_e:
            w.append(f"delete element {fam} {table} {name} {_elements(gone_e)}")
        if come_e:
            w.append(f"add element {fam} {table} {name} {_elements(come_e)}")
    for fam in ("bridge", "inet"):
        mine = [k for k in changed if k[0] == fam]
        if mine:
            w.append(f"table {fam} {table} {{")
            for _, name in mine:
                _block(w, name, new.chains[(fam, name)])
            w.append("}")
    w += adds
    w += [f"delete set {fam} {table} {name}" for fam, name in old.sets if (fam, name) not in new.sets]
    return "\n".join(w) + "\n" if w else ""


def compile_ruleset(spec: HostSecgroups, table: str, port_name: PortName) -> Compiled:
    """The whole nft script for ``spec`` (what a first apply, or a repair, sends)."""
    plan = build_plan(spec, port_name)
    return Compiled(text=render_full(plan, table), ports=plan.ports, enforced=plan.enforced, rules=plan.rules,
                    skipped=plan.skipped)


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

    def forwarding(self) -> None:
        return None

    def clear(self) -> None:
        return None


class Libnftables:
    """libnftables (what the nft command itself runs) called in-process: an apply costs no process
    start (``nft -f``, plus ``ip netns exec`` for a namespace, was most of a rule change's time on
    the host). Calls run on one thread of their own that entered ``netns`` once and stays there
    (a network namespace is per thread; the agent's other threads keep the host's)."""

    def __init__(self, netns: str = "") -> None:
        import ctypes
        from concurrent.futures import ThreadPoolExecutor

        lib = ctypes.CDLL("libnftables.so.1")
        lib.nft_ctx_new.restype, lib.nft_ctx_new.argtypes = ctypes.c_void_p, [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_output.argtypes = lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        self.lib = lib
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="nft", initializer=_enter_netns, initargs=(netns,))
        self.run("list tables")  # fails here (FirewallError) if the library or the namespace is unusable

    def run(self, text: str) -> None:
        from concurrent.futures import BrokenExecutor

        try:
            err = self.pool.submit(self._run, text).result(timeout=60)
        except BrokenExecutor as exc:  # its thread could not enter the namespace (gone, or never made)
            raise FirewallError(f"libnftables: {exc.__cause__ or exc}") from None
        if err is not None:
            raise FirewallError(f"nft refused the ruleset: {err[:1500]}")

    def _run(self, text: str) -> str | None:
        ctx = self.lib.nft_ctx_new(0)
        if not ctx:
            return "libnftables: no context"
        try:
            self.lib.nft_ctx_buffer_output(ctx)  # nothing printed on the agent's stdout
            self.lib.nft_ctx_buffer_error(ctx)
            if self.lib.nft_run_cmd_from_buffer(ctx, text.encode()) == 0:
                return None
            return (self.lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace").strip() or "failed"
        finally:
            self.lib.nft_ctx_free(ctx)


def _enter_netns(netns: str) -> None:
    if not netns:
        return
    import ctypes

    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:  # CLONE_NEWNET, this thread only
            raise OSError(ctypes.get_errno(), f"setns into network namespace {netns}")
    finally:
        os.close(fd)


class NftFirewall:
    """One atomic transaction per apply, in network namespace ``netns`` when set: through libnftables
    in-process where it loads, else ``nft -f -``."""

    enforcing = True
    backend = "nftables"
    reason = ""

    def __init__(self, table: str, netns: str = "", nft: str = "nft", inprocess: bool = True) -> None:
        self.table, self.netns, self.nft = table, netns, nft
        self.lib: Libnftables | None = None
        if inprocess:
            try:
                self.lib = Libnftables(netns)
            except (OSError, AttributeError, FirewallError) as exc:
                log.info("libnftables not usable (%s): applying with the nft command", exc)

    def _cmd(self, *args: str) -> list[str]:
        base = [self.nft, *args]
        return ["ip", "netns", "exec", self.netns, *base] if self.netns else base

    def apply(self, text: str) -> None:
        if self.lib is not None:
            self.lib.run(text)
            return
        try:
            p = subprocess.run(self._cmd("-f", "-"), input=text, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FirewallError(f"nft: {exc}") from None
        if p.returncode != 0:
            raise FirewallError(f"nft refused the ruleset: {p.stderr.strip()[:1500]}")

    def clear(self) -> None:
        self.apply(removal(self.table))

    def forwarding(self) -> None:
        """EIPs are routed through the host: IPv4 forwarding on (idempotent; once per process)."""
        if not getattr(self, "_forwarding", False):
            self._forwarding = _sysctl(self.netns, "net.ipv4.ip_forward=1")

    def listing(self) -> str:
        p = subprocess.run(self._cmd("list", "table", "inet", self.table), capture_output=True, text=True, timeout=60)
        q = subprocess.run(self._cmd("list", "table", "bridge", self.table), capture_output=True, text=True,
                           timeout=60)
        return p.stdout + q.stdout


def firewall_backend(mode: str, network_mode: str, table: str, netns: str = "") -> Any:
    """``mode`` auto: nftables where the agent runs real networking and can use nft, else none."""
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
    return _sysctl(netns, "net.bridge.bridge-nf-call-iptables=1")


def _sysctl(netns: str, setting: str) -> bool:
    cmd = ["sysctl", "-qw", setting]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


# --- the agent's loop: region -> nftables ------------------------------------------------------

class FirewallSync:
    """Pulls the host's security groups (and EIPs) when told (``kick``) and applies them; never raises.

    Told by: agent start (reconcile: a full apply), the long poll's ``secgroup_version`` moving (an
    incremental apply: only the chains, map elements and sets that differ from the last plan, one
    transaction), and the periodic sync (``kick(full=True)``: repairs a ruleset changed by hand)."""

    def __init__(self, backend: Any, table: str, fetch: Callable[[], HostSecgroups], port_name: PortName | None
                 ) -> None:
        import threading

        from core.agent.qos import qos_backend

        self.backend, self.table, self.fetch = backend, table, fetch
        self.qos = qos_backend(backend)
        self.port_name: PortName = port_name or (lambda sid, idx: "")
        self._kick = threading.Event()
        self._full = False
        self._offer_lock = threading.Lock()
        self._offered: dict[str, Any] | None = None  # a HostSecgroups the long poll brought, not yet applied
        self._spec_applied: HostSecgroups | None = None  # what the last apply compiled
        self._refetch = True  # the next apply fetches (unless offered); False: kicked to re-apply the last
        self.plan: Plan | None = None  # what the kernel holds (None: unknown, the next apply is full)
        self.applied_version: int | None = None
        self.applied_at: float | None = None
        self.ports = self.enforced = self.eips = 0
        self.error = ""
        self.fetch_ms = self.compile_ms = self.apply_ms = 0.0
        self._kicked_at: float | None = None  # when the first kick not yet served came
        self.applies = 0
        self.last_mode = ""  # full | delta | none (nothing differed)

    def kick(self, full: bool = False, spec: dict[str, Any] | None = None, refetch: bool = True) -> None:
        """Apply soon; ``spec``: the host's security groups as the long poll brought them (the
        next apply uses them instead of fetching; the newest of several offered wins).
        ``refetch=False``: the rules are those last applied, only the host changed (a guest built or
        gone: its port's device now exists or not), so they are compiled again without a fetch. A
        change of the rules comes with the long poll (the deploy's item came with its port's rules)."""
        import time

        if full:
            self._full = True
        if refetch:
            self._refetch = True
        if spec is not None:
            with self._offer_lock:
                have = self._offered
                if have is None or int(spec.get("version") or 0) >= int(have.get("version") or 0):
                    self._offered = spec
        if self._kicked_at is None:
            self._kicked_at = time.monotonic()
        self._kick.set()

    def _spec(self) -> HostSecgroups:
        with self._offer_lock:
            raw, self._offered = self._offered, None
        refetch, self._refetch = self._refetch, False
        if raw is not None and int(raw.get("version") or 0) >= (self.applied_version or 0):  # never go back
            try:
                return HostSecgroups.model_validate(raw)
            except ValueError as exc:
                log.warning("security groups from the long poll refused (%s): fetching them", exc)
                refetch = True
        if not refetch and self._spec_applied is not None and self.plan is not None:
            return self._spec_applied
        return self.fetch()

    def status(self) -> dict[str, Any]:
        return {"backend": self.backend.backend, "enforcing": self.backend.enforcing,
                "reason": self.backend.reason, "table": self.table, "applied_version": self.applied_version,
                "ports": self.ports, "enforced_ports": self.enforced, "eips": self.eips,
                "bw_limited_ports": self.qos.limited, "error": self.error or self.qos.error}

    def sync_once(self, full: bool = False) -> bool:
        import time

        full = full or self._full
        self._full = False
        kicked, self._kicked_at = self._kicked_at, None
        woke_ms = (time.monotonic() - kicked) * 1000 if kicked is not None else None
        try:
            tf = time.perf_counter()
            spec = self._spec()
            t0 = time.perf_counter()
            plan = build_plan(spec, self.port_name, self.plan.marks if self.plan else None)
            old = None if full else self.plan
            text = render_full(plan, self.table) if old is None else render_delta(old, plan, self.table)
            t1 = time.perf_counter()
            if text:
                if plan.eips:
                    self.backend.forwarding()
                try:
                    self.backend.apply(text)
                except FirewallError:
                    if old is None:
                        raise
                    log.warning("incremental apply refused, applying the whole ruleset")
                    self.backend.apply(render_full(plan, self.table))
                    old = None
            t2 = time.perf_counter()
            self.qos.apply(plan.limits)  # never raises: its error is reported (and retried next sync)
        except Exception as exc:  # the loop goes on; the reason is what the host reports
            self.plan = None
            self._refetch = True
            self.error = str(exc)[:500] or type(exc).__name__
            log.warning("security groups not applied: %s", self.error)
            return False
        changed = spec.version != self.applied_version
        self.plan, self._spec_applied = plan, spec
        self.last_mode = "none" if not text else "full" if old is None else "delta"
        self.applied_version, self.applied_at = spec.version, time.time()
        self.ports, self.enforced, self.eips, self.error = plan.ports, plan.enforced, plan.eips, ""
        self.fetch_ms, self.compile_ms, self.apply_ms = (t0 - tf) * 1000, (t1 - t0) * 1000, (t2 - t1) * 1000
        self.applies += 1
        if changed:
            # where a change's time goes on the host: waking after the kick, the fetch, the diff, nft
            woke = f"woke {woke_ms:.1f} ms, " if woke_ms is not None else ""
            log.info("security groups v%d: %d port(s), %d enforced, %d eip(s); %s apply (%sfetch %.1f ms, "
                     "compile %.1f ms, nft %.1f ms)%s", spec.version, plan.ports, plan.enforced, plan.eips,
                     self.last_mode, woke, self.fetch_ms, self.compile_ms, self.apply_ms,
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
                if not self._kick.wait(60):
                    self._refetch = True  # the minute's sync asks the region
            else:
                failures += 1
                self._kick.wait(min(30.0, 0.5 * 2 ** min(failures, 6)))
