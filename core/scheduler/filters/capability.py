"""Hosts whose driver lacks a capability the request needs (``required_capabilities``).

Capabilities are what each host's driver declared when it registered (drivers.base.Capability):
a migration target must be able to take a migrating guest, and so on. One reason per missing
capability, so a forecast says which one ruled the hosts out.
"""
from __future__ import annotations

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection


def lacks(capability: str) -> str:
    return f"host(s) lack capability {capability}"


class CapabilityFilter(Filter):
    name = "capability"

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        n = ctx.size
        return [Rejection(lacks(c), True, ~ctx.snap.host_caps.mask(c, n)) for c in ctx.req.required_capabilities]
