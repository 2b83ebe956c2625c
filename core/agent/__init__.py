"""The host agent: config drive, host networking and the DHCP server for its guests.

The agent loop (register, ping, long-poll work items) is built against the region later."""

from __future__ import annotations

__all__: list[str] = []  # import the submodules; pyroute2/pycdlib stay unloaded until used
