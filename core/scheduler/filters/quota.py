"""The project's remaining quota (passed in the request) must allow one more instance."""
from __future__ import annotations

import numpy as np

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection
from core.scheduler.verdict import OK, Verdict

QUOTA_EXHAUSTED = "project quota is exhausted"


class QuotaFilter(Filter):
    name = "quota"
    dynamic = True

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        if ctx.quota_left is None or ctx.quota_left > 0:
            return []
        return [Rejection(f"{QUOTA_EXHAUSTED} ({ctx.quota_reason})", False, np.ones(ctx.size, np.bool_))]

    def check(self, ctx: RequestContext, slot: int) -> Verdict:
        if ctx.quota_left is None or ctx.quota_left > 0:
            return OK
        return Verdict.unfit(f"{QUOTA_EXHAUSTED} ({ctx.quota_reason})")
