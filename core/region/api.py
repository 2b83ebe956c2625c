"""Region API (``/api/s/compute_v2``): specific routes first, then the generic resource grammar."""
from __future__ import annotations

from fastapi import APIRouter

from core.console.routes import router as console_router
from core.hostapi.routes import router as host_agent_router
from core.metrics.api import router as metrics_router
from core.region.capabilities import router as capabilities_router
from core.region.host_bmc import router as host_bmc_router
from core.region.quota_api import router as quota_router
from core.region.routes import router as resource_router
from core.region.scheduling import resolve_schedule_refs
from core.scheduler.provider import set_ref_resolver

set_ref_resolver(resolve_schedule_refs)  # the scheduler accepts names wherever ids, as Cloudpods'

router = APIRouter()
router.include_router(host_agent_router)  # /agent/...: before the generic grammar
router.include_router(console_router)  # /servers/<id>/vnc, /webconsole/...: before the generic grammar
router.include_router(quota_router)
router.include_router(capabilities_router)  # /capabilities: before the generic grammar
router.include_router(host_bmc_router)  # /hosts/<id>/start|stop|reset|ipmi|sensors...: before the grammar
router.include_router(metrics_router)  # /servers/<id>/metrics, /hosts/<id>/metrics: before the grammar
router.include_router(resource_router)
