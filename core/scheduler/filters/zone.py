"""``prefer_region`` / ``prefer_zone`` / ``prefer_manager`` restrict placement to one region, zone
or cloudprovider (Cloudpods' meaning); ``usable_managers`` keeps every project off the hosts of
cloud accounts it may not use (another project's AWS zones are not its capacity)."""
from __future__ import annotations

import numpy as np

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection

WRONG_REGION = "host(s) are not in the requested region"
WRONG_ZONE = "host(s) are not in the requested zone"
WRONG_MANAGER = "host(s) are not of the requested cloudprovider"
NOT_USABLE = "host(s) belong to a cloud account this project cannot use"


class ZoneFilter(Filter):
    name = "zone"

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        s, n, req = ctx.snap, ctx.size, ctx.req
        out = []
        if req.usable_managers is not None:
            codes = [c for c in (s.manager_codes.find(m) for m in req.usable_managers) if c > 0]
            mine = s.manager[:n]
            out.append(Rejection(NOT_USABLE, True, (mine != 0) & ~np.isin(mine, np.asarray(codes, np.int32))))
        if req.prefer_manager:
            out.append(Rejection(WRONG_MANAGER, True, s.manager[:n] != s.manager_codes.find(req.prefer_manager)))
        if req.prefer_region:
            out.append(Rejection(WRONG_REGION, True, s.region[:n] != s.region_codes.find(req.prefer_region)))
        if req.prefer_zone:
            out.append(Rejection(WRONG_ZONE, True, s.zone[:n] != s.zone_codes.find(req.prefer_zone)))
        return out
