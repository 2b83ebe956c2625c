"""Policy rules of the scheduler API (registered at import).

Placement decisions read every host, so asking for one is an admin's (or the region's) job;
a forecast only reveals counts and reasons, which any project member may see before creating.
"""
from __future__ import annotations

from core.keystone.policy import Rule, register

RULES = (
    Rule("scheduler:scheduler:perform", role="admin", description="Ask where servers would be placed."),
    Rule("scheduler:scheduler:forecast", role="member",
         description="Dry-run a placement and see why hosts were filtered."),
)
register(RULES)
