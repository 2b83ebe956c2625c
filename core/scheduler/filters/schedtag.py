"""``require``/``exclude`` schedtags on hosts, zones, storages and networks (prefer/avoid score)."""
from __future__ import annotations

import numpy as np

from core.scheduler.context import RequestContext
from core.scheduler.filters.base import Filter, Rejection
from core.scheduler.request import ScheduleInput, TagTarget
from core.scheduler.snapshot import Membership

HOST_LACKS_TAG = "host(s) lack a required schedtag"
HOST_HAS_EXCLUDED_TAG = "host(s) carry an excluded schedtag"
ZONE_LACKS_TAG = "host(s) are in a zone lacking a required schedtag"
ZONE_HAS_EXCLUDED_TAG = "host(s) are in a zone carrying an excluded schedtag"
NO_STORAGE_WITH_TAGS = "host(s) have no storage matching the storage schedtags"
NO_NETWORK_WITH_TAGS = "host(s) reach no network matching the network schedtags"


def _tagged(req: ScheduleInput, target: TagTarget, usable: np.ndarray, tags: Membership, count: int
            ) -> np.ndarray:
    """Which of ``count`` storages (networks) are usable, carry every required tag of the request's and
    none it excludes."""
    ok = usable.copy()
    for t in req.tags(target, "require"):
        ok &= tags.mask(t, count)
    for t in req.tags(target, "exclude"):
        ok &= ~tags.mask(t, count)
    return ok


class SchedtagFilter(Filter):
    name = "schedtag"

    def evaluate(self, ctx: RequestContext) -> list[Rejection]:
        s, n, req = ctx.snap, ctx.size, ctx.req
        out = []
        for t in req.tags("hosts", "require"):
            out.append(Rejection(HOST_LACKS_TAG, True, ~s.host_tags.mask(t, n)))
        for t in req.tags("hosts", "exclude"):
            out.append(Rejection(HOST_HAS_EXCLUDED_TAG, True, s.host_tags.mask(t, n)))
        for t in req.tags("zones", "require"):
            out.append(Rejection(ZONE_LACKS_TAG, True, ~s.zone_tag_mask(t)))
        for t in req.tags("zones", "exclude"):
            out.append(Rejection(ZONE_HAS_EXCLUDED_TAG, True, s.zone_tag_mask(t)))
        if req.disks and (req.tags("storages", "require") or req.tags("storages", "exclude")):
            ok = _tagged(req, "storages", s.s_ok, s.storage_tags, len(s.storage_ids))
            owner, flat = s.storage_pairs()
            has = np.bincount(owner[ok[flat]], minlength=n) > 0
            out.append(Rejection(NO_STORAGE_WITH_TAGS, True, ~has))
        if req.networks and (req.tags("networks", "require") or req.tags("networks", "exclude")):
            ok = _tagged(req, "networks", s.n_ok, s.network_tags, len(s.network_ids))
            wire_ok = np.bincount(s.n_wire[ok], minlength=len(s.wire_codes)) > 0
            owner, flat = s.wire_pairs()
            has = np.bincount(owner[wire_ok[flat]], minlength=n) > 0
            out.append(Rejection(NO_NETWORK_WITH_TAGS, True, ~has))
        return out
