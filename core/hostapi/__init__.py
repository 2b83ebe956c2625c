"""The host contract and the controller's host-facing side.

    protocol.py   work kinds, typed payloads/results, guest states -> server status (no DB: the
                  agent daemon imports it too)
    routes.py     /api/s/compute_v2/agent/...: join, register, ping, guests, work items, reports, images
    enroll.py     join tokens (a use count and an expiry), enrolling and unenrolling hosts; the per-host
                  service users are keystone's (core.keystone.service_users); models.py: the tables
"""
from __future__ import annotations

__all__: list[str] = []
