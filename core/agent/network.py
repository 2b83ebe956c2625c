"""Guest networking on the host: the wire's bridge (pyroute2), and our DHCP server on it.

    net = GuestNetwork(cfg)                    # network_mode "none" (test:///): names only, no kernel
    bridge = net.plug(nic, hostname)           # an InstanceNic: bridge ready, DHCP answers its MAC with its IP
    net.unplug(mac)

One ``DhcpServer`` per bridge, started on first use; each answers only the MACs of this host's
guests, with exactly the address, mask, gateway and DNS the region allocated.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
from typing import Any

from core.agent.config import AgentConfig, WireConfig
from core.errors import InputParameterError
from drivers.base import InstanceNic

log = logging.getLogger("cloudpods.agent.network")

SIMULATED_BRIDGE = "br-sim"  # what test:/// guests are "attached" to when no bridge is configured


def lease_for(nic: InstanceNic, hostname: str | None = None) -> Any:
    """The DHCP lease of one nic of an instance."""
    from core.agent.dhcp import Lease

    dns = tuple(d.strip() for d in (nic.dns or "").split(",") if d.strip())
    mtu = nic.mtu or None
    return Lease(mac=nic.mac, ip=nic.ip, prefixlen=int(nic.mask), gateway=nic.gateway or None, dns=dns,
                 hostname=hostname, mtu=mtu if mtu and mtu != 1500 else None)


class GuestNetwork:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self._dhcp: dict[str, Any] = {}  # bridge -> DhcpServer
        self._mac_bridge: dict[str, str] = {}

    @property
    def real(self) -> bool:
        return self.cfg.network_mode == "host"

    def bridge_for(self, nic: InstanceNic) -> tuple[str, WireConfig | None]:
        wc = self.cfg.bridge_of(nic.wire_id)
        bridge = (wc.bridge if wc else "") or nic.bridge
        if not bridge:
            if self.real:
                raise InputParameterError(f"wire {nic.wire_id} has no bridge on host {self.cfg.host_name}: "
                                          "add it to the agent's wires or the host-wire joint")
            bridge = SIMULATED_BRIDGE
        return bridge, wc

    def plug(self, nic: InstanceNic, hostname: str | None = None) -> str:
        """Make the nic's bridge ready and lease its address; returns the bridge name."""
        bridge, wc = self.bridge_for(nic)
        lease = lease_for(nic, hostname)
        if not self.real:
            return bridge
        from core.agent.netconf import HostNetwork

        with self._lock:
            vlan = int(nic.vlan_id or 1)
            HostNetwork().ensure_wire(bridge, uplink=wc.uplink if wc else None, vlan_id=vlan if wc and wc.uplink else 1,
                                      mtu=nic.mtu or None)
            if wc and wc.address:
                _ensure_address(bridge, wc.address)
            srv = self._dhcp.get(bridge)
            if srv is None:
                from core.agent.dhcp import DhcpServer

                srv = DhcpServer(bridge, server_ip=(wc.dhcp_server_ip if wc else None) or _server_ip(bridge, nic))
                srv.start()
                self._dhcp[bridge] = srv
                log.info("DHCP server on %s (%s)", bridge, srv.responder.server_ip)
            srv.set_lease(lease)
            before = self._mac_bridge.get(lease.mac)
            if before not in (None, bridge) and before in self._dhcp:  # the NIC moved to another network's
                self._dhcp[before].remove_lease(lease.mac)          # bridge: the old one stops answering it
            self._mac_bridge[lease.mac] = bridge
        return bridge

    def unplug(self, mac: str) -> None:
        with self._lock:
            bridge = self._mac_bridge.pop(mac.lower(), None)
            srv = self._dhcp.get(bridge) if bridge else None
            if srv is not None:
                srv.remove_lease(mac.lower())

    def close(self) -> None:
        with self._lock:
            for srv in self._dhcp.values():
                srv.close()
            self._dhcp.clear()


def _server_ip(bridge: str, nic: InstanceNic) -> str:
    """The DHCP server's own address: the bridge's, else the network's gateway (the usual router)."""
    from core.agent.dhcp import interface_ipv4

    ip = interface_ipv4(bridge)
    if ip:
        return ip
    if nic.gateway:
        return nic.gateway
    raise InputParameterError(f"bridge {bridge} has no IPv4 address and network {nic.network_id} no "
                              "gateway: give the wire an address or dhcp_server_ip in the agent config")


def _ensure_address(bridge: str, address: str) -> None:
    from pyroute2 import IPRoute

    iface = ipaddress.IPv4Interface(address)
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=bridge)[0]
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=2)}
        if (str(iface.ip), iface.network.prefixlen) not in have:
            ipr.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen)
