"""Host networking with pyroute2: one Linux bridge per wire, a VLAN sub-interface when vlan_id != 1.

Every call is idempotent (``ensure_*`` leaves a correct setup alone, ``remove_*`` of something
absent is a no-op), so the agent can re-apply its whole network config after a restart.

    net = HostNetwork()                       # or HostNetwork(netns="test-ns")
    net.ensure_wire("br-wire1", uplink="eth1", vlan_id=100)   # eth1.100 enslaved to br-wire1
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute, NetNS
from pyroute2.netlink.exceptions import NetlinkError

__all__ = ["HostNetwork", "NetconfError", "WireLinks", "vlan_ifname"]

_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


class NetconfError(Exception):
    """A host network change could not be made (bad name, conflicting device, kernel refusal)."""


@dataclass(frozen=True)
class WireLinks:
    bridge: str
    uplink: str | None  # the interface enslaved to the bridge: the NIC or its VLAN sub-interface


def vlan_ifname(parent: str, vlan_id: int) -> str:
    """``eth1.100``; shortened to fit IFNAMSIZ when the parent name is long."""
    name = f"{parent}.{vlan_id}"
    if len(name) > 15:
        name = f"{parent[: 15 - len(str(vlan_id)) - 1]}.{vlan_id}"
    return name


class HostNetwork:
    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    # --- wires ----------------------------------------------------------------------------------

    def ensure_wire(
        self, bridge: str, *, uplink: str | None = None, vlan_id: int = 1, mtu: int | None = None
    ) -> WireLinks:
        """Bridge ``bridge`` exists and is up; ``uplink`` (or its VLAN ``vlan_id`` sub-interface) is a port."""
        _check_vlan(vlan_id)
        self.ensure_bridge(bridge, mtu=mtu)
        port = None
        if uplink is not None:
            port = uplink if vlan_id == 1 else self.ensure_vlan(uplink, vlan_id)
            self.ensure_port(bridge, port)
        return WireLinks(bridge=bridge, uplink=port)

    def remove_wire(self, bridge: str, *, uplink: str | None = None, vlan_id: int = 1) -> None:
        """Delete the bridge and the VLAN sub-interface we made; a plain uplink NIC is only released."""
        _check_vlan(vlan_id)
        with self._ipr() as ipr:
            if uplink is not None:
                if vlan_id != 1:
                    self._delete(ipr, vlan_ifname(uplink, vlan_id), kind="vlan")
                else:
                    idx = _index(ipr, uplink)
                    if idx is not None:
                        _call(ipr.link, "set", index=idx, master=0)
            self._delete(ipr, bridge, kind="bridge")

    # --- building blocks ------------------------------------------------------------------------

    def ensure_bridge(self, name: str, *, mtu: int | None = None) -> int:
        _check_name(name)
        with self._ipr() as ipr:
            idx = _index(ipr, name)
            if idx is None:
                # STP off and no forward delay: a guest's first DHCP DISCOVER must not be dropped
                _call(ipr.link, "add", ifname=name, kind="bridge", br_stp_state=0, br_forward_delay=0)
                idx = _index(ipr, name)
                assert idx is not None
            elif _kind(ipr, idx) != "bridge":
                raise NetconfError(f"{name} exists and is not a bridge ({_kind(ipr, idx) or 'physical'})")
            changes: dict[str, Any] = {"state": "up"}
            if mtu is not None:
                changes["mtu"] = mtu
            _call(ipr.link, "set", index=idx, **changes)
            return idx

    def ensure_vlan(self, parent: str, vlan_id: int) -> str:
        _check_name(parent)
        _check_vlan(vlan_id)
        name = vlan_ifname(parent, vlan_id)
        with self._ipr() as ipr:
            pidx = _index(ipr, parent)
            if pidx is None:
                raise NetconfError(f"uplink {parent} does not exist")
            idx = _index(ipr, name)
            if idx is None:
                try:
                    ipr.link("add", ifname=name, kind="vlan", link=pidx, vlan_id=vlan_id)
                except NetlinkError as exc:
                    if exc.code == errno.EOPNOTSUPP:
                        raise NetconfError(
                            "the kernel has no 802.1Q VLAN support (load module 8021q)"
                        ) from None
                    raise NetconfError(f"netlink add {name}: {exc}") from None
                idx = _index(ipr, name)
                assert idx is not None
            else:
                info = _vlan_info(ipr, idx)
                if info != (pidx, vlan_id):
                    raise NetconfError(f"{name} exists but is not VLAN {vlan_id} on {parent}")
            _call(ipr.link, "set", index=pidx, state="up")
            _call(ipr.link, "set", index=idx, state="up")
        return name

    def ensure_port(self, bridge: str, port: str) -> None:
        with self._ipr() as ipr:
            bidx, pidx = _index(ipr, bridge), _index(ipr, port)
            if bidx is None or pidx is None:
                raise NetconfError(f"{bridge if bidx is None else port} does not exist")
            master = _attr(ipr, pidx, "IFLA_MASTER")
            if master not in (None, 0, bidx):
                raise NetconfError(f"{port} is already a port of another master (index {master})")
            _call(ipr.link, "set", index=pidx, master=bidx, state="up")

    def bridge_ports(self, bridge: str) -> list[str]:
        with self._ipr() as ipr:
            bidx = _index(ipr, bridge)
            if bidx is None:
                return []
            return sorted(
                link.get_attr("IFLA_IFNAME") for link in ipr.get_links() if link.get_attr("IFLA_MASTER") == bidx
            )

    def exists(self, name: str) -> bool:
        with self._ipr() as ipr:
            return _index(ipr, name) is not None

    def kind(self, name: str) -> str | None:
        with self._ipr() as ipr:
            idx = _index(ipr, name)
            return None if idx is None else _kind(ipr, idx)

    def is_up(self, name: str) -> bool:
        with self._ipr() as ipr:
            idx = _index(ipr, name)
            if idx is None:
                return False
            link = ipr.get_links(idx)[0]
            return bool(link["flags"] & 1)  # IFF_UP

    # --- private --------------------------------------------------------------------------------

    def _ipr(self) -> Any:
        try:
            return NetNS(self.netns) if self.netns else IPRoute()
        except (OSError, NetlinkError) as exc:
            raise NetconfError(
                f"cannot open netlink{' in ' + self.netns if self.netns else ''}: {exc}"
            ) from None

    def _delete(self, ipr: Any, name: str, *, kind: str) -> None:
        idx = _index(ipr, name)
        if idx is None:
            return
        actual = _kind(ipr, idx)
        if actual != kind:
            raise NetconfError(
                f"refusing to delete {name}: it is a {actual or 'physical'} device, not a {kind}"
            )
        _call(ipr.link, "del", index=idx)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _IFNAME_RE.match(name):
        raise NetconfError(f"bad interface name {name!r} (1-15 of [A-Za-z0-9_.-])")


def _check_vlan(vlan_id: int) -> None:
    if not isinstance(vlan_id, int) or not 1 <= vlan_id <= 4094:
        raise NetconfError(f"vlan_id must be 1..4094, got {vlan_id!r}")


def _index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def _attr(ipr: Any, idx: int, attr: str) -> Any:
    return ipr.get_links(idx)[0].get_attr(attr)


def _kind(ipr: Any, idx: int) -> str | None:
    info = _attr(ipr, idx, "IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None


def _vlan_info(ipr: Any, idx: int) -> tuple[int, int | None] | None:
    link = ipr.get_links(idx)[0]
    info = link.get_attr("IFLA_LINKINFO")
    if info is None or info.get_attr("IFLA_INFO_KIND") != "vlan":
        return None
    data = info.get_attr("IFLA_INFO_DATA")
    parent: int = link.get_attr("IFLA_LINK")
    return (parent, data.get_attr("IFLA_VLAN_ID") if data is not None else None)


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except NetlinkError as exc:
        raise NetconfError(f"netlink {args[0] if args else ''} {kwargs.get('ifname', '')}: {exc}") from None
