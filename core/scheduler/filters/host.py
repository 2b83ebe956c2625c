"""``prefer_host`` (id or name) pins the server to one host, as Cloudpods' ``prefer_host`` does."""
from __future__ import annotations

import numpy as np

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection

NOT_REQUESTED_HOST = "host(s) are not the requested host"


class HostFilter(Filter):
    name = "host"

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        want = ctx.req.prefer_host
        if not want:
            return []
        s = ctx.snap
        mask = np.ones(ctx.size, np.bool_)
        slot = s.host_index.get(want)
        if slot is not None:
            mask[slot] = False
        else:
            # a name is accepted wherever an id is (API.md §3); names are not indexed, so scan once
            for i, name in enumerate(s.host_names):
                if name == want and s.present[i]:
                    mask[i] = False
        return [Rejection(NOT_REQUESTED_HOST, True, mask)]
