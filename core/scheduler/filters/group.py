"""Hard instance-group rules: anti-affinity caps members per host, affinity keeps them together.

Soft (non-strict) groups never reject a host; the instance-group scorer handles them.
"""
from __future__ import annotations

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection
from core.scheduler.verdict import OK, Verdict

ANTI_AFFINITY_FULL = "host(s) already hold the most members an anti-affinity group allows"
AFFINITY_ELSEWHERE = "host(s) hold no member of an affinity group that already has members"


class GroupFilter(Filter):
    name = "instance_group"
    dynamic = True

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        out = []
        for g in ctx.groups:
            if not g.strict:
                continue
            counts = ctx.snap.group_counts(g.id)[: ctx.size]
            if g.policy == "anti_affinity":
                out.append(Rejection(ANTI_AFFINITY_FULL, False, counts >= max(1, g.granularity)))
            elif counts.any():
                out.append(Rejection(AFFINITY_ELSEWHERE, False, counts == 0))
        return out

    def check(self, ctx: RequestContext, slot: int) -> Verdict:
        for g in ctx.groups:
            if not g.strict:
                continue
            members = ctx.snap.group_members.get(g.id, {})
            here = members.get(slot, 0)
            if g.policy == "anti_affinity":
                if here >= max(1, g.granularity):
                    return Verdict.unfit(ANTI_AFFINITY_FULL)
            elif here == 0 and members:
                return Verdict.unfit(AFFINITY_ELSEWHERE)
        return OK

