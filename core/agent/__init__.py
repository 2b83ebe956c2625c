"""The host agent daemon: it pulls work from the region and hands it to the driver it hosts.

    agent.py      the loop: register, long-poll work items, report; ping; status sync; events
    handlers.py   work kind (core.host_protocol) -> hosted driver calls -> the typed result
    images.py     the image cache (imagecache.py) plus glance's metadata: HostEnv.images
    network.py    the wire's bridge and our DHCP server (dhcp.py) answering each guest's MAC
    facts.py      host facts + driver capabilities -> the registration body; usage for pings
    config.py     agent.json;  link.py: the HTTP client of core.hostapi.routes
    local.py      the in-process agent of `ocadm serve --with-agent` (libvirt test:///)
    hollow.py     N simulated hosts in one process (scale tests)
    netconf.py, dhcp.py: pyroute2 bridges, the DHCP server

The driver (KVM, ...) is chosen by name through drivers/registry.py; its own preparation (qcow2
overlays, config drive, taps for KVM) lives in its package. The contract is core/host_protocol.py;
the controller's side of it lives in core.hostapi.
"""
from __future__ import annotations

__all__: list[str] = []  # import the submodules; pyroute2/libvirt stay unloaded until used
