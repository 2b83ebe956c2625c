"""Soft instance groups: soft affinity prefers hosts holding members, soft anti-affinity avoids them."""
from __future__ import annotations

import numpy as np

from core.scheduler.context import RequestContext
from core.scheduler.scorers.base import Scorer


class GroupScorer(Scorer):
    name = "instance_group"
    dynamic = True

    def raw(self, ctx: RequestContext) -> np.ndarray:
        out = np.zeros(ctx.size)
        for g in ctx.groups:
            if not g.strict:
                sign = 1.0 if g.policy == "affinity" else -1.0
                out += sign * ctx.snap.group_counts(g.id)[: ctx.size]
        return out

    def raw_one(self, ctx: RequestContext, slot: int) -> float:
        total = 0.0
        for g in ctx.groups:
            if not g.strict:
                sign = 1.0 if g.policy == "affinity" else -1.0
                total += sign * ctx.snap.group_members.get(g.id, {}).get(slot, 0)
        return total
