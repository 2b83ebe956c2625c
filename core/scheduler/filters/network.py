"""Nics need a reachable network (on one of the host's wires) with free IP addresses.

As for storage, the vector pass checks totals per nic group and ``assign_nics`` makes the
greedy choice for the chosen host: preferred (by schedtag) then emptiest network.
"""
from __future__ import annotations

import numpy as np

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection
from core.scheduler.placement import NicPlacement
from core.scheduler.verdict import OK, Verdict

NETWORK_UNREACHABLE = "host(s) cannot reach the requested network"
NETWORK_LACKS_IPS = "host(s) reach no network with enough free IP addresses"


class NetworkFilter(Filter):
    name = "network"
    dynamic = True

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        if not ctx.nic_groups:
            return []
        s, n = ctx.snap, ctx.size
        owner, flat = s.wire_pairs()
        nwires = len(s.wire_codes)
        free = np.maximum(s.n_free, 0)
        out = []
        for g in ctx.nic_groups:
            reach = np.bincount(s.n_wire[g.mask], minlength=nwires) > 0
            wire_free = np.bincount(s.n_wire[g.mask], weights=free[g.mask], minlength=nwires)
            has = np.bincount(owner[reach[flat]], minlength=n) > 0
            total = np.bincount(owner, weights=wire_free[flat], minlength=n)
            out.append(Rejection(NETWORK_UNREACHABLE, True, ~has))
            out.append(Rejection(NETWORK_LACKS_IPS, False, total < len(g.nics)))
        return out

    def check(self, ctx: RequestContext, slot: int) -> Verdict:
        got = assign_nics(ctx, slot)
        return Verdict.unfit(got[0], got[1]) if isinstance(got, tuple) else OK


def assign_nics(ctx: RequestContext, slot: int) -> list[NicPlacement] | tuple[str, bool]:
    """Choose a network per nic reachable from host ``slot``, or return ``(reason, final)``."""
    s = ctx.snap
    reachable = [k for w in s.host_wires[slot] for k in s.wire_networks.get(w, ())]
    free = {k: float(s.n_free[k]) for k in reachable}
    out: list[NicPlacement] = []
    for g in ctx.nic_groups:
        cands = [k for k in reachable if g.mask[k]]
        if not cands:
            return NETWORK_UNREACHABLE, True
        for idx, _nic in g.nics:
            best = max(cands, key=lambda k: (ctx.preferred_networks[k], free[k]))
            if free[best] < 1:
                fitting = [k for k in cands if free[k] >= 1]
                if not fitting:
                    return NETWORK_LACKS_IPS, False
                best = max(fitting, key=lambda k: (ctx.preferred_networks[k], free[k]))
            free[best] -= 1
            out.append(NicPlacement(idx, s.network_ids[best]))
    out.sort(key=lambda x: x.index)
    return out
