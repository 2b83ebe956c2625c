"""A kvm server needs a ``hypervisor`` host, an esxi one an ``esxi`` host, and so on."""
from __future__ import annotations

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection

WRONG_HYPERVISOR = "host(s) run a different hypervisor"


class HypervisorFilter(Filter):
    name = "hypervisor"

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        code = ctx.snap.htype_codes.find(ctx.req.host_type)
        return [Rejection(WRONG_HYPERVISOR, True, ctx.snap.htype[: ctx.size] != code)]
