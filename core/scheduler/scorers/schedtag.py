"""``prefer`` schedtags raise a host's score and ``avoid`` lowers it: one point per tag matched
on the host, its zone, or any storage/network it offers the request."""
from __future__ import annotations

import numpy as np

from core.scheduler.context import RequestContext
from core.scheduler.scorers.base import Scorer


class SchedtagScorer(Scorer):
    name = "schedtag"

    def raw(self, ctx: RequestContext) -> np.ndarray:
        s, n, req = ctx.snap, ctx.size, ctx.req
        out = np.zeros(n)
        for sign, strategy in ((1.0, "prefer"), (-1.0, "avoid")):
            for t in req.tags("hosts", strategy):  # type: ignore[arg-type]
                out += sign * s.host_tags.mask(t, n)
            for t in req.tags("zones", strategy):  # type: ignore[arg-type]
                out += sign * s.zone_tag_mask(t)
        if req.disks and ctx.preferred_storages.any():
            # the best storage the host offers is the one a disk will land on
            owner, flat = s.storage_pairs()
            out += _best_per_host(n, owner, ctx.preferred_storages[flat])
        if req.networks and ctx.preferred_networks.any():
            owner, flat = s.wire_pairs()
            per_wire = _best_per_host(len(s.wire_codes), s.n_wire, ctx.preferred_networks)
            out += _best_per_host(n, owner, per_wire[flat])
        return out


def _best_per_host(n: int, owner: np.ndarray, values: np.ndarray) -> np.ndarray:
    best = np.full(n, -np.inf)
    np.maximum.at(best, owner, values)
    best[np.isinf(best)] = 0.0
    return best
