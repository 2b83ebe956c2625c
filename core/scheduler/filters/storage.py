"""Disks need attached storages of the requested type/medium/id with free space.

Free space is ``(capacity - reserved) * cmtbound - used``. The vector pass checks what any
assignment needs (per disk group: enough free in total and one storage for the largest disk);
``assign`` makes the real greedy choice for the chosen host, largest disk first, onto the
preferred (by schedtag) then emptiest storage, and is what ``check`` runs.
"""
from __future__ import annotations

import numpy as np

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection
from core.scheduler.placement import DiskPlacement
from core.scheduler.verdict import OK, Verdict

NOT_ATTACHED = "host(s) are not attached to the requested storage"
NO_MATCHING_STORAGE = "host(s) have no storage of the requested type and medium"
STORAGE_LACKS_FREE = "host(s) lack free storage"


class StorageFilter(Filter):
    name = "storage"
    dynamic = True

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        if not ctx.disk_groups:
            return []
        s, n = ctx.snap, ctx.size
        owner, flat = s.storage_pairs()
        free = s.s_cap - s.s_used
        out = []
        for g in ctx.disk_groups:
            elig = g.mask[flat]
            h, st = owner[elig], flat[elig]
            has = np.bincount(h, minlength=n) > 0
            total = np.bincount(h, weights=free[st], minlength=n)
            largest = np.full(n, -np.inf)
            np.maximum.at(largest, h, free[st])
            out.append(Rejection(NOT_ATTACHED if g.storage_id else NO_MATCHING_STORAGE, True, ~has))
            out.append(Rejection(STORAGE_LACKS_FREE, False, (total < g.total) | (largest < g.largest)))
        return out

    def check(self, ctx: RequestContext, slot: int) -> Verdict:
        got = assign_disks(ctx, slot)
        return Verdict.unfit(got[0], got[1]) if isinstance(got, tuple) else OK


def assign_disks(ctx: RequestContext, slot: int) -> list[DiskPlacement] | tuple[str, bool]:
    """Choose a storage per disk on host ``slot``, or return ``(reason, final)``."""
    s = ctx.snap
    attached = s.host_storages[slot]
    free = {st: float(s.s_cap[st] - s.s_used[st]) for st in attached}
    out: list[DiskPlacement] = []
    for g in ctx.disk_groups:
        cands = [st for st in attached if g.mask[st]]
        if not cands:
            return (NOT_ATTACHED if g.storage_id else NO_MATCHING_STORAGE), True
        for idx, disk in g.disks:
            best = max(cands, key=lambda st: (ctx.preferred_storages[st], free[st]))
            if free[best] < disk.size:
                fitting = [st for st in cands if free[st] >= disk.size]
                if not fitting:
                    return STORAGE_LACKS_FREE, False
                best = max(fitting, key=lambda st: (ctx.preferred_storages[st], free[st]))
            free[best] -= disk.size
            out.append(DiskPlacement(idx, s.storage_ids[best], disk.size))
    out.sort(key=lambda d: d.index)
    return out
