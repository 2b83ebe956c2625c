"""``place(request, snapshot)``: filter all hosts at once, score them, then place a batch.

1. Every filter runs as one vector pass over all host slots; a host is attributed to the first
   filter and reason that rejects it.
2. Every scorer runs once over the candidates; raw values are clamped, mapped onto 0..1 with the
   range seen across candidates and weighted. The map is fixed for the request.
3. For each instance of the batch: take the best host (argmax), re-check only the filters whose
   answer can change as capacity is consumed, on that host alone; then choose its storages and
   networks, claim the resources in the snapshot and re-score that host. Nothing else changes
   between two decisions, so no other host needs re-scoring.

``place`` is pure with respect to the database: it only reads and updates the snapshot.
With ``dry_run`` the claims are released before returning (that is ``forecast``).
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from core.counters import record_placement
from core.scheduler.context import RequestContext, build_context
from core.scheduler.filters import Filter, Rejection, default_filters
from core.scheduler.filters.network import assign_nics
from core.scheduler.filters.storage import assign_disks
from core.scheduler.placement import Placement
from core.scheduler.request import ScheduleInput
from core.scheduler.result import PlacementResult, ReasonTable
from core.scheduler.scorers import Scorer, default_scorers
from core.scheduler.snapshot import Snapshot
from core.scheduler.verdict import Verdict

DEFAULT_WEIGHTS: Mapping[str, float] = {
    "allocation": 1.0,
    "avoid_same_host": 1.0,
    "schedtag": 3.0,
    "image_cache": 0.5,
    "creating_load": 0.5,
    "instance_group": 2.0,
}


@dataclass(frozen=True)
class SchedulerConfig:
    """Operator knobs, passed in (never read from globals inside a filter or scorer)."""

    allocation: Literal["spread", "pack"] = "spread"
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))

    def filters(self) -> tuple[Filter, ...]:
        return default_filters()

    def scorers(self) -> list[tuple[Scorer, float]]:
        out = []
        for s in default_scorers(self.allocation):
            w = float(self.weights.get(s.name, 0.0))
            if w:
                out.append((s, w))
        return out


DEFAULT_CONFIG = SchedulerConfig()


@dataclass(slots=True)
class _DynamicScore:
    scorer: Scorer
    weight: float
    lo: float
    scale: float

    def one(self, ctx: RequestContext, slot: int) -> float:
        raw = min(max(self.scorer.raw_one(ctx, slot), self.scorer.minval), self.scorer.maxval)
        return self.weight * (raw - self.lo) / self.scale


def place(
    req: ScheduleInput,
    snap: Snapshot,
    config: SchedulerConfig = DEFAULT_CONFIG,
    *,
    dry_run: bool = False,
) -> PlacementResult:
    """Place ``req.count`` instances; the snapshot keeps the claims unless ``dry_run``."""
    with snap.lock:
        ctx = build_context(req, snap)
        n = ctx.size
        filters = [f for f in config.filters() if f.name not in req.ignore_filters]
        table = ReasonTable()
        removed = np.full(n, -1, np.int32)
        alive = snap.present[:n].copy()
        for f in filters:
            for r in _evaluate(f, ctx):
                hit = alive & r.mask
                if hit.any():
                    removed[hit] = table.code(f.name, r.reason, r.final)
                    alive &= ~hit
        rejected = table.counts(removed)
        total, static, dynamic = _score(ctx, config, alive)
        batch_removed = np.full(n, -1, np.int32)
        placements, stop_reason = _place_batch(ctx, filters, total, static, dynamic, batch_removed, table)
        if dry_run:
            for p in placements:
                snap.release(p)
        done = batch_removed >= 0
        removed[done] = batch_removed[done]
        result = PlacementResult(
            req_count=req.count, placements=placements, host_count=snap.host_count,
            rejected=rejected, exhausted=table.counts(batch_removed), stop_reason=stop_reason,
            dry_run=dry_run, _removed=removed, _table=table, _snap=snap,
        )
    record_placement(result)
    return result


def forecast(req: ScheduleInput, snap: Snapshot, config: SchedulerConfig = DEFAULT_CONFIG) -> PlacementResult:
    """Dry run of ``place``: same decisions, nothing kept. ``.to_forecast()`` gives the reply."""
    return place(req, snap, config, dry_run=True)


def _evaluate(f: Filter, ctx: RequestContext) -> list[Rejection]:
    try:
        return f.evaluate(ctx)
    except Exception as exc:
        return [Rejection(Verdict.error(exc).reason, True, np.ones(ctx.size, np.bool_))]


def _score(
    ctx: RequestContext, config: SchedulerConfig, alive: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[_DynamicScore]]:
    n = ctx.size
    cand = np.flatnonzero(alive)
    static = np.zeros(n)
    total = np.full(n, -np.inf)
    dynamic: list[_DynamicScore] = []
    dyn_sum = np.zeros(cand.size)
    for scorer, weight in config.scorers():
        raw = np.clip(scorer.raw(ctx)[cand], scorer.minval, scorer.maxval)
        lo = float(raw.min()) if raw.size else 0.0
        spread = float(raw.max()) - lo if raw.size else 0.0
        # equal raw values leave the scale at 1 raw unit, so later batch updates still count
        scale = spread if spread > 1e-12 else 1.0
        part = weight * (raw - lo) / scale
        if scorer.dynamic:
            dynamic.append(_DynamicScore(scorer, weight, lo, scale))
            dyn_sum += part
        else:
            static[cand] += part
    total[cand] = static[cand] + dyn_sum
    return total, static, dynamic


def _place_batch(
    ctx: RequestContext,
    filters: list[Filter],
    total: np.ndarray,
    static: np.ndarray,
    dynamic: list[_DynamicScore],
    batch_removed: np.ndarray,
    table: ReasonTable,
) -> tuple[list[Placement], str]:
    snap, req = ctx.snap, ctx.req
    # storage and network checks are the assignment itself (done below), so skip them here
    recheck = [f for f in filters if f.dynamic and f.name not in ("storage", "network")]
    groups = tuple(g.id for g in ctx.groups)
    batch = uuid.uuid4().hex
    placements: list[Placement] = []
    while len(placements) < req.count and total.size:
        if ctx.quota_left is not None and ctx.quota_left <= 0:
            return placements, f"project quota allows no more instances ({ctx.quota_reason})"
        slot = int(total.argmax())
        if total[slot] == -np.inf:
            break
        failed = _recheck(ctx, recheck, slot)
        disks = nics = None
        if failed is None:
            disks = assign_disks(ctx, slot)
            if isinstance(disks, tuple):
                failed = ("storage", *disks)
        if failed is None:
            nics = assign_nics(ctx, slot)
            if isinstance(nics, tuple):
                failed = ("network", *nics)
        if failed is not None:
            batch_removed[slot] = table.code(*failed)
            total[slot] = -np.inf
            continue
        assert isinstance(disks, list) and isinstance(nics, list)
        p = Placement(
            claim_id=f"{batch}-{len(placements)}", instance=len(placements),
            host_id=snap.host_ids[slot], host_name=snap.host_names[slot],
            generation=int(snap.generation[slot]), vcpu=req.vcpu_count, vmem=req.vmem_size,
            disks=tuple(disks), nics=tuple(nics), groups=groups,
        )
        snap.apply_claim(p)
        placements.append(p)
        ctx.batch_placed[slot] = ctx.batch_placed.get(slot, 0) + 1
        if ctx.quota_left is not None:
            ctx.quota_left -= 1
        total[slot] = static[slot] + sum(d.one(ctx, slot) for d in dynamic)
    return placements, ""


def _recheck(ctx: RequestContext, filters: list[Filter], slot: int) -> tuple[str, str, bool] | None:
    for f in filters:
        try:
            v = f.check(ctx, slot)
        except Exception as exc:
            v = Verdict.error(exc)
        if not v.ok:
            return f.name, v.reason, v.status != "unfit"
    return None
