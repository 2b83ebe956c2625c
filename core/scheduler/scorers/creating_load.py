"""Prefer hosts with fewer servers being created right now (deploy load)."""
from __future__ import annotations

import numpy as np

from core.scheduler.context import RequestContext
from core.scheduler.scorers.base import Scorer


class CreatingLoadScorer(Scorer):
    name = "creating_load"
    dynamic = True

    def raw(self, ctx: RequestContext) -> np.ndarray:
        return -ctx.snap.creating[: ctx.size].astype(np.float64)

    def raw_one(self, ctx: RequestContext, slot: int) -> float:
        return -float(ctx.snap.creating[slot])
