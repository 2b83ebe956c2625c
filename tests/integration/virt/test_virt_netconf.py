"""Bridges and VLAN sub-interfaces made by core.agent.netconf, in a throwaway namespace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from virt_peers import need_module, need_root

pytestmark = pytest.mark.full

NS = "cmtn-host"


@pytest.fixture
def net() -> Iterator[object]:
    need_root()
    need_module("pyroute2")
    from pyroute2 import NetNS, netns

    from core.agent.netconf import HostNetwork

    if NS in netns.listnetns():
        netns.remove(NS)
    netns.create(NS)
    try:
        with NetNS(NS) as n:  # a stand-in for the host's physical uplink
            n.link("add", ifname="uplink0", kind="veth", peer={"ifname": "uplink0p"})
        yield HostNetwork(netns=NS)
    finally:
        netns.remove(NS)


def test_vlan_wire_is_idempotent_and_removable(net) -> None:  # type: ignore[no-untyped-def]
    from core.agent.netconf import NetconfError, WireLinks

    try:
        links = net.ensure_wire("br-w100", uplink="uplink0", vlan_id=100)
    except NetconfError as exc:
        if "no 802.1Q VLAN support" not in str(exc):
            raise
        # a kernel feature, not a package: no setup script can add it, so this skips even in full runs
        pytest.skip(f"this kernel cannot make VLAN interfaces: {exc}")
    assert links == WireLinks(bridge="br-w100", uplink="uplink0.100")
    assert net.ensure_wire("br-w100", uplink="uplink0", vlan_id=100) == links  # second run changes nothing
    assert net.kind("br-w100") == "bridge" and net.kind("uplink0.100") == "vlan"
    assert net.bridge_ports("br-w100") == ["uplink0.100"]
    assert net.is_up("br-w100") and net.is_up("uplink0.100") and net.is_up("uplink0")
    net.remove_wire("br-w100", uplink="uplink0", vlan_id=100)
    net.remove_wire("br-w100", uplink="uplink0", vlan_id=100)  # removing twice is fine
    assert not net.exists("br-w100") and not net.exists("uplink0.100")
    assert net.exists("uplink0")  # the NIC itself is never deleted


def test_untagged_wire_enslaves_the_uplink(net) -> None:  # type: ignore[no-untyped-def]
    net.ensure_wire("br-w1", uplink="uplink0", vlan_id=1, mtu=1400)
    assert net.bridge_ports("br-w1") == ["uplink0"]
    net.remove_wire("br-w1", uplink="uplink0")
    assert not net.exists("br-w1") and net.exists("uplink0")


def test_conflicts_are_clear_errors(net) -> None:  # type: ignore[no-untyped-def]
    from core.agent.netconf import NetconfError

    with pytest.raises(NetconfError, match="uplink0 exists and is not a bridge"):
        net.ensure_bridge("uplink0")
    with pytest.raises(NetconfError, match="uplink nope does not exist"):
        net.ensure_wire("br-x", uplink="nope", vlan_id=5)
    with pytest.raises(NetconfError, match="vlan_id must be 1..4094"):
        net.ensure_wire("br-x", vlan_id=5000)
    with pytest.raises(NetconfError, match="bad interface name"):
        net.ensure_bridge("this-name-is-too-long")
    net.ensure_wire("br-a", uplink="uplink0")
    with pytest.raises(NetconfError, match="already a port of another master"):
        net.ensure_wire("br-b", uplink="uplink0")
    with pytest.raises(NetconfError, match="refusing to delete uplink0"):
        net.remove_wire("uplink0")
