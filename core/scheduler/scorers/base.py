"""The scorer contract: a raw number per host; the engine clamps, normalises and weighs it.

``raw(ctx)`` covers all host slots. The engine clamps raw values to ``[minval, maxval]``,
maps the range seen across the candidates at the start of a request linearly onto 0..1 and
multiplies by the configured weight. The map stays fixed for the whole batch, so a ``dynamic``
scorer's ``raw_one`` for the host just used stays comparable with every other host's score.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from core.scheduler.context import RequestContext


class Scorer:
    name: ClassVar[str] = ""
    dynamic: ClassVar[bool] = False
    minval: ClassVar[float] = -np.inf
    maxval: ClassVar[float] = np.inf

    def raw(self, ctx: RequestContext) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement raw()")

    def raw_one(self, ctx: RequestContext, slot: int) -> float:
        return float(self.raw(ctx)[slot])
