"""Free memory (MB): capacity is ``(mem_size - mem_reserved) * mem_cmtbound``."""
from __future__ import annotations

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection
from core.scheduler.verdict import OK, Verdict

MEM_TOO_SMALL = "host(s) have less memory in total than requested"
MEM_LACKS_FREE = "host(s) lack free memory"


class MemoryFilter(Filter):
    name = "memory"
    dynamic = True

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        s, n, need = ctx.snap, ctx.size, ctx.req.vmem_size
        cap = s.mem_cap[:n]
        return [Rejection(MEM_TOO_SMALL, True, cap < need),
                Rejection(MEM_LACKS_FREE, False, cap - s.mem_used[:n] < need)]

    def check(self, ctx: RequestContext, slot: int) -> Verdict:
        cap = float(ctx.snap.mem_cap[slot])
        need = ctx.req.vmem_size
        if cap < need:
            return Verdict.unfit(MEM_TOO_SMALL, final=True)
        if cap - float(ctx.snap.mem_used[slot]) < need:
            return Verdict.unfit(MEM_LACKS_FREE)
        return OK
