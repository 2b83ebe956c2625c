"""The image's OS architecture must match the host CPU (``os_arch``)."""
from __future__ import annotations

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection
from core.scheduler.snapshot import normalize_arch

WRONG_ARCH = "host(s) have a different CPU architecture than the image"


class ArchFilter(Filter):
    name = "image_arch"

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        arch = normalize_arch(ctx.req.os_arch)
        if not arch:
            return []
        return [Rejection(WRONG_ARCH, True, ctx.snap.arch[: ctx.size] != ctx.snap.arch_codes.find(arch))]
