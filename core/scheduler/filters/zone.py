"""``prefer_region`` / ``prefer_zone`` restrict placement to one region or zone (Cloudpods' meaning)."""
from __future__ import annotations

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection

WRONG_REGION = "host(s) are not in the requested region"
WRONG_ZONE = "host(s) are not in the requested zone"


class ZoneFilter(Filter):
    name = "zone"

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        s, n, req = ctx.snap, ctx.size, ctx.req
        out = []
        if req.prefer_region:
            out.append(Rejection(WRONG_REGION, True, s.region[:n] != s.region_codes.find(req.prefer_region)))
        if req.prefer_zone:
            out.append(Rejection(WRONG_ZONE, True, s.zone[:n] != s.zone_codes.find(req.prefer_zone)))
        return out
