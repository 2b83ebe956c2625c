"""The filter contract: a vector pass over all host slots, and a per-host check.

``evaluate(ctx)`` returns, per reason, a boolean mask over host slots of the hosts it rejects
(the engine attributes each host to the first filter and reason that rejected it).
``check(ctx, slot)`` answers for one host; dynamic filters (whose answer changes as a batch
consumes capacity) override it with a scalar version, because the batch loop re-checks only
the host it is about to use.
"""
from __future__ import annotations

from typing import ClassVar, NamedTuple

import numpy as np

from core.scheduler.context import RequestContext
from core.scheduler.verdict import OK, Verdict


class Rejection(NamedTuple):
    reason: str
    final: bool
    mask: np.ndarray  # over host slots: True = rejected for this reason


class Filter:
    """Base class; subclasses set ``name`` and implement ``evaluate``."""

    name: ClassVar[str] = ""
    dynamic: ClassVar[bool] = False

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        raise NotImplementedError(f"{type(self).__name__} must implement evaluate()")

    def check(self, ctx: RequestContext, slot: int) -> Verdict:
        for r in self.evaluate(ctx):
            if r.mask[slot]:
                return Verdict.unfit(r.reason, r.final)
        return OK
