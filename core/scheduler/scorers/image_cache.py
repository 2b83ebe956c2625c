"""Prefer hosts that already cache the request's images (no download before boot)."""
from __future__ import annotations

import numpy as np

from core.scheduler.context import RequestContext
from core.scheduler.scorers.base import Scorer


class ImageCacheScorer(Scorer):
    name = "image_cache"
    minval, maxval = 0.0, 1.0

    def raw(self, ctx: RequestContext) -> np.ndarray:
        images = ctx.req.image_ids
        out = np.zeros(ctx.size)
        for image in images:
            out += ctx.snap.host_images.mask(image, ctx.size)
        return out / len(images) if images else out
