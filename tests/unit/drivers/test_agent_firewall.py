"""The agent's nftables compiler and backends (no root): what a host's security groups become.

Real packets through these rulesets: tests/integration/test_secgroups_nft.py."""
from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from core.agent.firewall import FirewallSync, NoFirewall, compile_ruleset, firewall_backend
from core.host_protocol import ContractError, GuestPort, HostSecgroups, SecRule


def port(ip: str, rules: list[SecRule], **kw: Any) -> GuestPort:
    return GuestPort(server_id=str(uuid.uuid4()), index=0, mac="00:22:AA:00:00:01", ip=ip, rules=rules, **kw)


def chain_of(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    i = next(n for n, x in enumerate(lines) if x.strip() == f"chain {name} {{")
    out = []
    for x in lines[i + 1:]:
        if x.strip() == "}":
            return out
        out.append(x.strip())
    raise AssertionError(name)


def chain_for(text: str, key: str) -> str:
    """The chain a map element (a guest's address, a port's mark) jumps to."""
    m = re.search(rf"(?:^|[{{,] ){re.escape(key)} : jump (g_[0-9a-f]+)", text, re.M)
    assert m, key
    return m.group(1)


def test_rules_become_one_transaction_with_a_chain_per_rule_set_and_direction() -> None:
    p = port("10.0.0.5", [
        SecRule(direction="in", action="deny", protocol="tcp", ports="22", cidrs=["10.9.0.0/16"], priority=90),
        SecRule(direction="in", action="allow", protocol="tcp", ports="22,80-443", priority=50),
        SecRule(direction="in", action="allow", protocol="any", priority=1, matches_nothing=True),
        SecRule(direction="out", action="allow", protocol="udp", cidrs=["8.8.8.8/32"], priority=1),
    ])
    c = compile_ruleset(HostSecgroups(version=3, ports=[p]), "cmn_t", lambda sid, i: "cp0123")
    # the old tables go and the new come in the same script (nft -f applies it atomically)
    assert c.text.startswith("add table bridge cmn_t\ndelete table bridge cmn_t\nadd table inet cmn_t\n"
                             "delete table inet cmn_t\n")
    assert chain_of(c.text, chain_for(c.text, "10.0.0.5")) == [  # the guest's address -> its ingress chain
        "ct state invalid drop",  # established/related flows: accepted in the forward chain before any guest's
        "ip saddr 10.9.0.0/16 tcp dport 22 drop",
        "tcp dport 22 accept", "tcp dport 80-443 accept",  # one rule per span: no anonymous sets
        "drop"]  # an empty peer group matches nothing; what nothing allows drops
    mark = re.search(r'"cp0123" : (0x0c[0-9a-f]{6})', c.text)
    assert mark, "the port's mark: from its id, stable"
    # egress that is allowed returns: the destination's ingress chain still decides
    assert chain_of(c.text, chain_for(c.text, mark.group(1)))[-2:] == [
        "ip daddr 8.8.8.8/32 meta l4proto udp return", "drop"]
    # anti-spoofing: the port's own MAC and address in sets the bridge's fixed rules look up
    assert '"cp0123" : jump check_mac_ip' in c.text
    assert 'elements = { "cp0123" . 00:22:aa:00:00:01 }' in c.text and 'elements = { "cp0123" . 10.0.0.5 }' in c.text
    assert "iifname . ether saddr != @port_mac drop" in chain_of(c.text, "check_mac")
    assert "ether type ip iifname . ip saddr != @port_ip drop" in chain_of(c.text, "check_ip")
    assert (c.ports, c.enforced) == (1, 1)


def test_peer_groups_are_named_sets_shared_by_every_port() -> None:
    sg = str(uuid.uuid4())
    rules = [SecRule(direction="in", action="allow", protocol="any", priority=1, peer=sg)]
    a, b = port("10.0.0.2", rules), port("10.0.0.3", rules)
    c = compile_ruleset(HostSecgroups(version=1, ports=[a, b], peers={sg: ["10.0.0.3", "10.0.0.2", "10.0.1.9"]}),
                        "cmn_t", lambda sid, i: f"cp{sid[:8]}")
    name = f"peer_{sg.replace('-', '')}"
    assert c.text.count(f"set {name} {{") == 1
    assert "elements = { 10.0.0.2, 10.0.0.3, 10.0.1.9 }" in c.text
    # the two guests have the same rules: one chain, both addresses jump to it
    assert c.text.count(f"ip saddr @{name} accept") == 1
    assert chain_for(c.text, "10.0.0.2") == chain_for(c.text, "10.0.0.3")


def test_checks_off_no_groups_and_ports_without_a_name() -> None:
    free = port("10.0.0.6", [], src_ip_check=False, src_mac_check=False, enforce=False)
    nameless = port("10.0.0.7", [])
    c = compile_ruleset(HostSecgroups(version=1, ports=[free, nameless]), "cmn_t",
                        lambda sid, i: "cpfree0" if sid == free.server_id else "")
    assert re.search(r'"cpfree0" : 0x0c', c.text)  # marked, nothing checked
    assert '"cpfree0" : jump' not in c.text and '"cpfree0" .' not in c.text
    assert "10.0.0.6 : jump" not in c.text  # in no group: not enforced
    assert c.skipped == [f"{nameless.server_id}/0"] and (c.ports, c.enforced) == (1, 0)


def test_the_contract_refuses_what_nft_would_misread() -> None:
    for bad in ({"ports": "22;flush ruleset"}, {"protocol": "gre"}, {"direction": "both"}):
        with pytest.raises(ValueError):
            SecRule.model_validate({"direction": "in", "action": "allow", "protocol": "tcp", "priority": 1, **bad})
    with pytest.raises(ValueError):
        GuestPort(server_id=str(uuid.uuid4()), index=0, mac="00:22:aa:00:00:01; drop", ip="10.0.0.1")
    assert issubclass(ContractError, ValueError)


def test_a_host_that_cannot_enforce_says_why_and_never_raises() -> None:
    fw = firewall_backend("auto", "none", "cmn_t")
    assert isinstance(fw, NoFirewall) and not fw.enforcing and "network_mode none" in fw.reason
    assert "firewall: none" in firewall_backend("none", "host", "cmn_t").reason

    def broken() -> HostSecgroups:
        raise OSError("controller unreachable")

    sync = FirewallSync(fw, "cmn_t", broken, None)
    assert sync.sync_once() is False and "unreachable" in sync.status()["error"]
    sync.fetch = lambda: HostSecgroups(version=7, ports=[port("10.0.0.8", [])])
    assert sync.sync_once() is True
    st = sync.status()
    assert st["applied_version"] == 7 and st["enforcing"] is False and st["error"] == ""


def test_overlapping_ports_and_networks_are_merged_for_nft() -> None:
    p = port("10.0.0.9", [SecRule(direction="in", action="allow", protocol="tcp", ports="100,80-443,22,444",
                                  cidrs=["10.1.0.0/16", "10.1.2.0/24", "10.2.0.0/16"], priority=1)])
    c = compile_ruleset(HostSecgroups(version=1, ports=[p]), "cmn_t", lambda sid, i: "cpx0")
    assert chain_of(c.text, chain_for(c.text, "10.0.0.9"))[1:-1] == [
        f"ip saddr {n} tcp dport {s} accept" for n in ("10.1.0.0/16", "10.2.0.0/16") for s in ("22", "80-444")]
    with pytest.raises(ValueError):
        SecRule(direction="in", action="allow", protocol="tcp", ports="443-80", priority=1)


def test_a_change_to_one_guest_replaces_only_its_chains() -> None:
    from core.agent.firewall import build_plan, render_delta

    names = lambda sid, i: f"cp{sid[:8]}"  # noqa: E731
    rule = SecRule(direction="in", action="allow", protocol="tcp", ports="22", priority=1)
    a, b = port("10.0.0.2", [rule]), port("10.0.0.3", [rule])
    old = build_plan(HostSecgroups(version=1, ports=[a, b]), names)
    assert len(old.chains) == 2  # a and b share their ingress chain (and their egress one)
    b2 = b.model_copy(update={"rules": [rule.model_copy(update={"ports": "2222"})]})
    new = build_plan(HostSecgroups(version=2, ports=[a, b2]), names, old.marks)
    d = render_delta(old, new, "cmn_t")
    lines = d.splitlines()
    # b's address stops jumping to the shared chain, its own comes, then the address jumps to it
    assert lines[0] == "delete element inet cmn_t dsts { 10.0.0.3 }"
    assert "tcp dport 2222 accept" in d and lines[-1].startswith("add element inet cmn_t dsts { 10.0.0.3 : jump g_")
    assert "10.0.0.2" not in d and "delete chain" not in d  # a keeps the chain it had
    assert "delete table" not in d and "bridge" not in d  # nothing else touched
    assert render_delta(new, new, "cmn_t") == ""  # nothing differs: nft is not even called
    # a guest gone: its elements go before its chain, in the same transaction
    gone = build_plan(HostSecgroups(version=3, ports=[a]), names, new.marks)
    d = render_delta(new, gone, "cmn_t")
    lines = d.splitlines()
    assert lines[0].startswith("delete element bridge cmn_t port_marks")
    drop = next(i for i, x in enumerate(lines) if x.startswith("delete chain inet cmn_t g_"))
    assert drop > lines.index("delete element inet cmn_t dsts { 10.0.0.3 }")  # nothing names it any more
    assert f'delete element bridge cmn_t port_mac {{ "cp{b.server_id[:8]}" . ' in d
    assert gone.marks == {k: v for k, v in new.marks.items() if k in gone.marks}  # marks stay put


def test_an_eip_becomes_dnat_and_snat_outside_its_network() -> None:
    from core.host_protocol import GuestEip

    p = port("10.0.0.5", [])
    spec = HostSecgroups(version=1, ports=[p], eips=[GuestEip(eip="203.0.113.9", ip="10.0.0.5", cidr="10.0.0.0/24",
                                                              server_id=p.server_id)])
    text = compile_ruleset(spec, "cmn_t", lambda sid, i: "cpe0").text
    assert "elements = { 203.0.113.9 : 10.0.0.5 }" in text and "elements = { 10.0.0.5 : 203.0.113.9 }" in text
    assert "elements = { 10.0.0.0/24 }" in text  # the guest's own network keeps its address
    assert "dnat ip to ip daddr map @eip_dnat" in text
    assert "ip daddr != @eip_local snat ip to ip saddr map @eip_snat" in text
    with pytest.raises(ValueError):
        GuestEip(eip="203.0.113.9; flush ruleset", ip="10.0.0.5", cidr="10.0.0.0/24", server_id=p.server_id)


def test_bandwidth_limits_shape_both_ways_and_only_change_what_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import subprocess

    from core.agent.qos import NoQos, TcQos, ifb_name, qos_backend, tc_lines

    assert isinstance(qos_backend(NoFirewall("test")), NoQos)
    assert len(ifb_name("cp0123456789ab0")) <= 15 and ifb_name("a") == ifb_name("a") != ifb_name("b")
    lines = tc_lines("cpx0", 100)
    assert lines[0].startswith("qdisc replace dev cpx0 root tbf rate 100mbit")
    assert f"mirred egress redirect dev {ifb_name('cpx0')}" in lines[2]
    assert lines[3].startswith(f"qdisc replace dev {ifb_name('cpx0')} root tbf rate 100mbit")
    assert tc_lines("cpx0", 0) == ["qdisc del dev cpx0 root", "qdisc del dev cpx0 ingress"]
    calls: list[tuple[list[str], str]] = []
    links = {"cpx0": 7, "cpy0": 8}

    def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        calls.append((cmd, kw.get("input") or ""))
        out = json.dumps([{"ifname": k, "ifindex": v} for k, v in links.items()]) if "-j" in cmd else ""
        return subprocess.CompletedProcess(cmd, 0, out, "")

    monkeypatch.setattr(subprocess, "run", run)
    q = TcQos()
    q.apply({"cpx0": 100, "cpy0": 0, "cpz0": 5})  # cpz0 is not there yet: limited when it appears
    batch = [i for c, i in calls if "-batch" in c]
    assert len(batch) == 1 and "dev cpx0 root tbf" in batch[0] and "cpy0" not in batch[0] and "cpz0" not in batch[0]
    assert ["ip", "link", "add", ifb_name("cpx0"), "type", "ifb"] in [c for c, _ in calls]
    calls.clear()
    q.apply({"cpx0": 100, "cpy0": 0, "cpz0": 5})
    assert not [c for c, _ in calls if "-batch" in c]  # nothing changed: tc is not called
    links["cpx0"] = 9  # the port re-created (the guest started again): limited again
    q.apply({"cpx0": 100, "cpy0": 0})
    assert any("dev cpx0 root tbf" in i for _, i in calls)
    calls.clear()
    links[ifb_name("cpx0")] = 10
    q.apply({"cpx0": 0})
    assert any("qdisc del dev cpx0 root" in i for _, i in calls)
    assert ["ip", "link", "del", ifb_name("cpx0")] in [c for c, _ in calls] and q.limited == 0


def test_a_guest_built_recompiles_the_rules_it_has_without_a_fetch() -> None:
    """After a work item the agent re-applies the rules the long poll brought (the new guest's device
    now exists) instead of fetching them: each deploy of bench/scale.py cost a full GET .../secgroups."""
    fetched: list[int] = []
    p = port("10.0.0.9", [])

    def fetch() -> HostSecgroups:
        fetched.append(1)
        return HostSecgroups(version=3, ports=[p])

    devices: dict[tuple[str, int], str] = {}
    sync = FirewallSync(firewall_backend("auto", "none", "cmn_t"), "cmn_t", fetch,
                        lambda sid, idx: devices.get((sid, idx), ""))
    assert sync.sync_once() and len(fetched) == 1 and sync.ports == 0  # no device yet
    devices[(p.server_id, 0)] = "vnet-built"  # the deploy made the guest's device
    sync.kick(refetch=False)
    assert sync.sync_once() and len(fetched) == 1  # compiled again from what it had
    assert sync.applies == 2 and sync.applied_version == 3 and sync.ports == 1
    sync.kick()  # a plain kick (start, the minute's sync) asks the region
    assert sync.sync_once() and len(fetched) == 2
