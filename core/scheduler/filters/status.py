"""Only enabled, online hosts take new servers."""
from __future__ import annotations

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection

HOST_DISABLED = "host(s) are disabled"
HOST_OFFLINE = "host(s) are offline"


class StatusFilter(Filter):
    name = "host_status"

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        s = ctx.snap
        n = ctx.size
        return [Rejection(HOST_DISABLED, True, ~s.enabled[:n]),
                Rejection(HOST_OFFLINE, True, ~s.online[:n])]
