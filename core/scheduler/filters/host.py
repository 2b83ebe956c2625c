"""``prefer_host`` (id or name) pins the server to one host, as Cloudpods' ``prefer_host`` does;
``exclude_hosts`` (ids or names) takes hosts out of one decision (a migration's source)."""
from __future__ import annotations

import numpy as np

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection
from core.scheduler.snapshot import Snapshot

NOT_REQUESTED_HOST = "host(s) are not the requested host"
EXCLUDED_HOST = "host(s) are excluded by the request"


def _slots(s: Snapshot, want: str) -> list[int]:
    """The slots a host id or name names (a name is accepted wherever an id is: API.md §3)."""
    slot = s.host_index.get(want)
    if slot is not None:
        return [slot]
    # names are not indexed, so scan once
    return [i for i, name in enumerate(s.host_names) if name == want and s.present[i]]


class HostFilter(Filter):
    name = "host"

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        out: list[Rejection] = []
        want = ctx.req.prefer_host
        if want:
            mask = np.ones(ctx.size, np.bool_)
            mask[_slots(ctx.snap, want)] = False
            out.append(Rejection(NOT_REQUESTED_HOST, True, mask))
        if ctx.req.exclude_hosts:
            mask = np.zeros(ctx.size, np.bool_)
            for h in ctx.req.exclude_hosts:
                mask[_slots(ctx.snap, h)] = True
            out.append(Rejection(EXCLUDED_HOST, True, mask))
        return out
