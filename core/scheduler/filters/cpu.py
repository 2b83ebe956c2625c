"""Free vCPUs: capacity is ``(cpu_count - cpu_reserved) * cpu_cmtbound``."""
from __future__ import annotations

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection
from core.scheduler.verdict import OK, Verdict

CPU_TOO_SMALL = "host(s) have fewer vCPUs in total than requested"
CPU_LACKS_FREE = "host(s) lack free vCPUs"


class CpuFilter(Filter):
    name = "cpu"
    dynamic = True

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        s, n, need = ctx.snap, ctx.size, ctx.req.vcpu_count
        cap = s.cpu_cap[:n]
        return [Rejection(CPU_TOO_SMALL, True, cap < need),
                Rejection(CPU_LACKS_FREE, False, cap - s.cpu_used[:n] < need)]

    def check(self, ctx: RequestContext, slot: int) -> Verdict:
        cap = float(ctx.snap.cpu_cap[slot])
        need = ctx.req.vcpu_count
        if cap < need:
            return Verdict.unfit(CPU_TOO_SMALL, final=True)
        if cap - float(ctx.snap.cpu_used[slot]) < need:
            return Verdict.unfit(CPU_LACKS_FREE)
        return OK
