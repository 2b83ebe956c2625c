"""Scorers, one module each; ``default_scorers`` is the explicit table the engine uses."""
from __future__ import annotations

from typing import Literal

from core.scheduler.scorers.allocation import AllocationScorer
from core.scheduler.scorers.base import Scorer
from core.scheduler.scorers.batch_spread import BatchSpreadScorer
from core.scheduler.scorers.creating_load import CreatingLoadScorer
from core.scheduler.scorers.group import GroupScorer
from core.scheduler.scorers.image_cache import ImageCacheScorer
from core.scheduler.scorers.schedtag import SchedtagScorer


def default_scorers(allocation: Literal["spread", "pack"] = "spread") -> tuple[Scorer, ...]:
    return (AllocationScorer(allocation), BatchSpreadScorer(), SchedtagScorer(), ImageCacheScorer(),
            CreatingLoadScorer(), GroupScorer())


__all__ = [
    "AllocationScorer", "BatchSpreadScorer", "CreatingLoadScorer", "GroupScorer", "ImageCacheScorer",
    "SchedtagScorer", "Scorer", "default_scorers",
]
