"""Free capacity, one dimension at a time: vCPUs and memory (MB).

A dimension's capacity is ``(total - reserved) * overcommit bound`` (``cpu_count``/``cpu_reserved``/
``cpu_cmtbound``, ``mem_size``/``mem_reserved``/``mem_cmtbound``; computed in core/scheduler/capacity.py).
A host whose capacity is under the request never fits it (final); one whose free part is under it
lacks room now (not final: the batch loop re-checks it as claims move).
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection
from core.scheduler.verdict import OK, Verdict

CPU_TOO_SMALL = "host(s) have fewer vCPUs in total than requested"
CPU_LACKS_FREE = "host(s) lack free vCPUs"
MEM_TOO_SMALL = "host(s) have less memory in total than requested"
MEM_LACKS_FREE = "host(s) lack free memory"


class CapacityFilter(Filter):
    """Subclasses say which snapshot columns and which request field make their dimension."""

    dynamic = True
    too_small: ClassVar[str]
    lacks_free: ClassVar[str]

    def sides(self, ctx: RequestContext) -> tuple[np.ndarray, np.ndarray, int]:
        """The capacity and used columns over host slots, and what the request needs."""
        raise NotImplementedError

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        cap_all, used, need = self.sides(ctx)
        n = ctx.size
        cap = cap_all[:n]
        return [Rejection(self.too_small, True, cap < need),
                Rejection(self.lacks_free, False, cap - used[:n] < need)]

    def check(self, ctx: RequestContext, slot: int) -> Verdict:
        cap_all, used, need = self.sides(ctx)
        cap = float(cap_all[slot])
        if cap < need:
            return Verdict.unfit(self.too_small, final=True)
        if cap - float(used[slot]) < need:
            return Verdict.unfit(self.lacks_free)
        return OK


class CpuFilter(CapacityFilter):
    name = "cpu"
    too_small, lacks_free = CPU_TOO_SMALL, CPU_LACKS_FREE

    def sides(self, ctx: RequestContext) -> tuple[np.ndarray, np.ndarray, int]:
        return ctx.snap.cpu_cap, ctx.snap.cpu_used, ctx.req.vcpu_count


class MemoryFilter(CapacityFilter):
    name = "memory"
    too_small, lacks_free = MEM_TOO_SMALL, MEM_LACKS_FREE

    def sides(self, ctx: RequestContext) -> tuple[np.ndarray, np.ndarray, int]:
        return ctx.snap.mem_cap, ctx.snap.mem_used, ctx.req.vmem_size
