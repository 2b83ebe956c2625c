"""Fixtures for the real-peer tests of the KVM agent (see virt_peers.py for the rules)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from virt_peers import Lan, make_lan, need_module, need_root


@pytest.fixture
def lan() -> Iterator[Lan]:
    need_root()
    need_module("pyroute2")
    from pyroute2 import netns

    lan = Lan(bridge="cmtd0", server_ip="10.213.78.1", prefixlen=24)
    for ns in netns.listnetns():  # leftovers of a killed run
        if ns.startswith("cmtd0-"):
            netns.remove(ns)
    cleanup = make_lan(lan.bridge, lan.server_ip, lan.prefixlen)
    try:
        yield lan
    finally:
        for ns in lan.clients:
            try:
                netns.remove(ns)  # takes the namespace's veth end (and so the pair) with it
            except OSError:
                pass
        cleanup()


@pytest.fixture
def virt_work() -> Path:
    """Where scripts/setup-virt.sh put the guest kernel and initramfs."""
    return Path(os.environ.get("VIRT_WORK", "/tmp/cm-virt"))
