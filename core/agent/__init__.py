"""The host agent: it pulls work from the region and turns it into guests on its host.

    agent.py      the loop: register, long-poll work items, report; ping; status sync; events
    handlers.py   work item kind -> driver calls -> the report body
    guests.py     deploy/remove a guest: image cache, qcow2 overlays, config drive, NICs
    network.py    the wire's bridge and our DHCP server (dhcp.py) answering each guest's MAC
    facts.py      host facts -> the registration body; usage for pings
    config.py     agent.json;  link.py: the HTTP client of the routes in api.py
    api.py        the region side: /agent/... routes, each confined to the caller's own host
    enroll.py     join tokens and the per-host service users (models.py: their tables)
    local.py      the in-process agent of `ocadm serve --with-agent` (libvirt test:///)
    configdrive.py, netconf.py, dhcp.py: NoCloud ISO, pyroute2 bridges, the DHCP server
"""

from __future__ import annotations

__all__: list[str] = []  # import the submodules; pyroute2/pycdlib/libvirt stay unloaded until used
