"""What ``place`` returns: the placements and, for whatever did not fit, why.

Every host the request could not use is attributed to exactly one (filter, reason): the first
filter that rejected it, either before placing anything or while the batch used capacity up.
Counting those gives Cloudpods' forecast shape and a one-line explanation a user can act on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from core.scheduler.placement import Placement

if TYPE_CHECKING:
    from core.scheduler.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class ReasonCount:
    filter_name: str
    reason: str
    final: bool
    count: int

    def text(self) -> str:
        return f"{self.count} {self.reason}"


@dataclass(slots=True)
class ReasonTable:
    """Interns (filter, reason, final) triples to small codes stored per host slot."""

    entries: list[tuple[str, str, bool]] = field(default_factory=list)
    _codes: dict[tuple[str, str, bool], int] = field(default_factory=dict)

    def code(self, filter_name: str, reason: str, final: bool) -> int:
        key = (filter_name, reason, final)
        c = self._codes.get(key)
        if c is None:
            c = self._codes[key] = len(self.entries)
            self.entries.append(key)
        return c

    def counts(self, codes: np.ndarray) -> list[ReasonCount]:
        codes = codes[codes >= 0]
        if codes.size == 0:
            return []
        hist = np.bincount(codes, minlength=len(self.entries))
        out = [ReasonCount(*self.entries[c], count=int(hist[c])) for c in np.flatnonzero(hist)]
        out.sort(key=lambda r: -r.count)
        return out


@dataclass(slots=True)
class PlacementResult:
    req_count: int
    placements: list[Placement]
    host_count: int
    rejected: list[ReasonCount]  # before the batch placed anything
    exhausted: list[ReasonCount]  # hosts used up while placing the batch
    stop_reason: str = ""
    dry_run: bool = False
    conflicts: int = 0  # placements the DB refused (generation moved) and that were re-placed
    _removed: np.ndarray | None = None
    _table: ReasonTable | None = None
    _snap: Snapshot | None = None

    @property
    def ok(self) -> bool:
        return len(self.placements) == self.req_count

    def explanation(self) -> str:
        """One line for a user; empty when everything was placed."""
        if self.ok:
            return ""
        head = f"placed {len(self.placements)} of {self.req_count}"
        if self.host_count == 0:
            return f"{head}: there are no hosts to schedule on"
        parts = [r.text() for r in self.rejected]
        parts += [f"{r.text()} (after this batch used them)" for r in self.exhausted]
        if self.stop_reason:
            parts.insert(0, self.stop_reason)
        return f"{head} (of {self.host_count} hosts): " + "; ".join(parts or ["no host fits"])

    def filter_counts(self) -> list[dict[str, Any]]:
        """Cloudpods' ``filtered_candidates``: per filter, hosts removed and why."""
        by_filter: dict[str, dict[str, Any]] = {}
        for r in [*self.rejected, *self.exhausted]:
            entry = by_filter.setdefault(r.filter_name, {"filter_name": r.filter_name, "count": 0, "reasons": []})
            entry["count"] += r.count
            entry["reasons"].append(r.text())
        return sorted(by_filter.values(), key=lambda e: -e["count"])

    def to_forecast(self) -> dict[str, Any]:
        return {
            "can_create": self.ok,
            "allow_count": len(self.placements),
            "req_count": self.req_count,
            "filtered_candidates": self.filter_counts(),
            "not_allow_reasons": [] if self.ok else [self.explanation()],
        }

    def to_candidates(self) -> dict[str, Any]:
        """Cloudpods' ``ScheduleOutput``: one candidate per instance, ``error`` where none fit."""
        cands: list[dict[str, Any]] = [p.to_candidate() for p in self.placements]
        if not self.ok:
            error = self.explanation()
            cands += [{"host_id": "", "name": "", "disks": [], "nets": [], "error": error}
                      for _ in range(self.req_count - len(self.placements))]
        return {"candidates": cands}

    def host_rejections(self) -> dict[str, tuple[str, str]]:
        """host id -> (filter, reason) for every host not usable (built on demand)."""
        if self._removed is None or self._table is None or self._snap is None:
            return {}
        ids = self._snap.host_ids
        out = {}
        for slot in np.flatnonzero(self._removed >= 0):
            name, reason, _final = self._table.entries[int(self._removed[slot])]
            if slot < len(ids) and ids[slot]:
                out[ids[slot]] = (name, reason)
        return out
