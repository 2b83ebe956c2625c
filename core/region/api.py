"""Region API (``/api/s/compute_v2``): specific routes first, then the generic resource grammar."""
from __future__ import annotations

from fastapi import APIRouter

from core.region.capabilities import router as capabilities_router
from core.region.host_bmc import router as host_bmc_router
from core.region.quota_api import router as quota_router
from core.region.routes import router as resource_router
from core.region.scheduling import resolve_schedule_refs
from core.scheduler.provider import set_ref_resolver

set_ref_resolver(resolve_schedule_refs)  # the scheduler accepts names wherever ids, as Cloudpods'

# The service's routes are these two around the host agents', consoles' and metrics' (core/api/app.py's
# SERVICE_ROUTERS puts them in matching order), so the region never imports those packages.
specific = APIRouter()  # matched before the generic grammar
specific.include_router(quota_router)
specific.include_router(capabilities_router)  # /capabilities
specific.include_router(host_bmc_router)  # /hosts/<id>/start|stop|reset|ipmi|sensors...
router = resource_router  # the generic resource grammar, matched last
