"""Least allocated (spread) or most allocated (pack): free CPU and memory share after placing."""
from __future__ import annotations

from typing import Literal

import numpy as np

from core.scheduler.context import RequestContext
from core.scheduler.scorers.base import Scorer


class AllocationScorer(Scorer):
    name = "allocation"
    dynamic = True
    minval, maxval = -1.0, 1.0

    def __init__(self, mode: Literal["spread", "pack"] = "spread") -> None:
        if mode not in ("spread", "pack"):
            raise ValueError(f"allocation mode must be spread or pack, not {mode!r}")
        self.sign = 1.0 if mode == "spread" else -1.0

    def raw(self, ctx: RequestContext) -> np.ndarray:
        s, n, req = ctx.snap, ctx.size, ctx.req
        with np.errstate(divide="ignore", invalid="ignore"):
            cpu = (s.cpu_cap[:n] - s.cpu_used[:n] - req.vcpu_count) / s.cpu_cap[:n]
            mem = (s.mem_cap[:n] - s.mem_used[:n] - req.vmem_size) / s.mem_cap[:n]
        share: np.ndarray = np.nan_to_num((cpu + mem) / 2.0, nan=0.0, posinf=0.0, neginf=0.0)
        return share * self.sign

    def raw_one(self, ctx: RequestContext, slot: int) -> float:
        s, req = ctx.snap, ctx.req
        cpu_cap, mem_cap = float(s.cpu_cap[slot]), float(s.mem_cap[slot])
        cpu = (cpu_cap - float(s.cpu_used[slot]) - req.vcpu_count) / cpu_cap if cpu_cap > 0 else 0.0
        mem = (mem_cap - float(s.mem_used[slot]) - req.vmem_size) / mem_cap if mem_cap > 0 else 0.0
        return self.sign * (cpu + mem) / 2.0
