"""Within one batch, avoid putting a second instance on a host already used by the batch."""
from __future__ import annotations

import numpy as np

from core.scheduler.context import RequestContext
from core.scheduler.scorers.base import Scorer


class BatchSpreadScorer(Scorer):
    name = "avoid_same_host"
    dynamic = True

    def raw(self, ctx: RequestContext) -> np.ndarray:
        out = np.zeros(ctx.size)
        for slot, placed in ctx.batch_placed.items():
            out[slot] = -placed
        return out

    def raw_one(self, ctx: RequestContext, slot: int) -> float:
        return -float(ctx.batch_placed.get(slot, 0))
