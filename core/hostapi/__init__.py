"""The controller's host-facing side. The host contract itself (work kinds, typed payloads/results,
guest states -> server status; no DB) is core/host_protocol.py, below this package and the region's:
the region's tasks, the agent daemon and these routes all import it, and it imports none of them.

    routes.py     /api/s/compute_v2/agent/...: join, register, ping, guests, work items, reports, images

Enrolling hosts (join tokens, the agents' service users and bindings) is the host registry's:
core/region/enroll.py, its tables core/region/models/agents.py.
"""
from __future__ import annotations

__all__: list[str] = []
