"""Helpers for the real-peer tests of the KVM agent: network namespaces, DHCP clients, libvirtd + qemu.

Everything here needs root and Debian packages that scripts/setup-virt.sh installs. Without
them the tests skip and say why; with CLOUDPODS_TEST_FULL=1 (as .ci/run sets) they fail instead.
Every object a test makes is named ``cmt*`` and removed in a finally block.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.waiting import wait_for  # noqa: F401  (the virt tests import it from here)

FULL = os.environ.get("CLOUDPODS_TEST_FULL") == "1"


def need(ok: bool, reason: str) -> None:
    """Skip (or, under CLOUDPODS_TEST_FULL=1, fail) when a real peer is missing."""
    if not ok:
        if FULL:
            pytest.fail(f"CLOUDPODS_TEST_FULL=1 but {reason}", pytrace=False)
        pytest.skip(reason)


def need_root() -> None:
    need(
        os.geteuid() == 0,
        "needs root (network namespaces, bridges, libvirtd); run scripts/setup-virt.sh as root",
    )


def need_exe(*names: str) -> None:
    for n in names:
        need(shutil.which(n) is not None, f"{n} not installed; run scripts/setup-virt.sh")


def need_module(name: str) -> None:
    try:
        __import__(name)
    except ImportError:
        need(False, f"python module {name} missing; pip install '.[kvm]' (or run scripts/setup-virt.sh)")


@dataclass
class Lan:
    """A bridge in the root namespace (carrying the DHCP server's address) and client namespaces."""

    bridge: str
    server_ip: str
    prefixlen: int
    clients: list[str] = field(default_factory=list)
    _n: int = 0

    def add_client(self, mac: str) -> str:
        """A namespace whose eth0 (MAC ``mac``) is plugged into the bridge; returns its name."""
        from pyroute2 import IPRoute, NetNS, netns

        self._n += 1
        ns = f"{self.bridge}-c{self._n}"
        host_end = f"{self.bridge}-h{self._n}"
        netns.create(ns)
        self.clients.append(ns)
        with IPRoute() as ipr:
            ipr.link("add", ifname=host_end, kind="veth", peer={"ifname": f"{self.bridge}-p{self._n}"})
            br = ipr.link_lookup(ifname=self.bridge)[0]
            ipr.link("set", index=ipr.link_lookup(ifname=host_end)[0], master=br, state="up")
            ipr.link("set", index=ipr.link_lookup(ifname=f"{self.bridge}-p{self._n}")[0], net_ns_fd=ns)
        with NetNS(ns) as n:
            i = n.link_lookup(ifname=f"{self.bridge}-p{self._n}")[0]
            n.link("set", index=i, ifname="eth0", address=mac, state="up")
            n.link("set", index=n.link_lookup(ifname="lo")[0], state="up")
        return ns


def _remove_links(*names: str) -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        for name in names:
            for i in ipr.link_lookup(ifname=name):
                ipr.link("del", index=i)


def make_lan(bridge: str, server_ip: str, prefixlen: int) -> Callable[[], None]:
    """Create the bridge with ``server_ip``; returns its cleanup."""
    from pyroute2 import IPRoute

    _remove_links(bridge)
    with IPRoute() as ipr:
        ipr.link("add", ifname=bridge, kind="bridge", br_stp_state=0, br_forward_delay=0)
        idx = ipr.link_lookup(ifname=bridge)[0]
        ipr.addr("add", index=idx, address=server_ip, prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")
    return lambda: _remove_links(bridge)


def event_script(directory: Path) -> tuple[Path, Path]:
    """A DHCP client hook script that appends each call's argument and environment to a log."""
    log = directory / "client-events.log"
    script = directory / "client-hook.sh"
    script.write_text(
        f'#!/bin/sh\n{{ echo "--- $1"; env | sort; }} >> {log}\n'
        # udhcpc leaves address configuration to its script; configure like a guest
        'if [ "$1" = bound ] || [ "$1" = renew ]; then\n'
        '  ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface"\nfi\n'
        # dhclient: configure the address, or it cannot unicast its renewal
        'case "$reason" in BOUND|RENEW|REBIND|REBOOT)\n'
        '  ip addr flush dev "$interface"; ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface";;\n'
        "esac\nexit 0\n"
    )
    script.chmod(0o755)
    return script, log


def read_events(log: Path) -> list[dict[str, str]]:
    """One dict per hook call: {'_arg': <first argument>, VAR: value, ...}."""
    if not log.exists():
        return []
    events: list[dict[str, str]] = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("--- "):
            events.append({"_arg": line[4:]})
        elif events and "=" in line:
            k, _, v = line.partition("=")
            events[-1][k] = v
    return events

