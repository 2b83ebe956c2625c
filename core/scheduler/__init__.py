"""The scheduler: filters and scorers over a warm capacity snapshot (ARCHITECTURE decision 5).

    snap = Snapshot(hosts=[HostRecord(...)], storages=[...], networks=[...])
    result = place(ScheduleInput(vcpu_count=2, vmem_size=2048, count=3), snap)
    result.placements        # [Placement(host_id=..., disks=..., nics=...)]
    result.explanation()     # "placed 2 of 3 (of 10 hosts): 8 host(s) lack free memory; ..."
    forecast(req, snap).to_forecast()   # Cloudpods' /scheduler/forecast reply
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.scheduler.errors import ScheduleInputError
from core.scheduler.placement import DiskPlacement, NicPlacement, Placement
from core.scheduler.records import GroupRecord, HostRecord, NetworkRecord, StorageRecord, ZoneRecord
from core.scheduler.request import DiskConfig, NetworkConfig, QuotaHeadroom, SchedtagConfig, ScheduleInput
from core.scheduler.verdict import Verdict

if TYPE_CHECKING:
    from core.scheduler.engine import DEFAULT_CONFIG, SchedulerConfig, forecast, place
    from core.scheduler.result import PlacementResult, ReasonCount
    from core.scheduler.snapshot import Snapshot

# The snapshot, the engine, its filters and scorers use numpy (~0.1 s CPU and ~20 MB to import): they
# load at the first placement or forecast, not with everything importing the package (policies, region).
_ENGINE = frozenset({"DEFAULT_CONFIG", "SchedulerConfig", "forecast", "place"})
_RESULT = frozenset({"PlacementResult", "ReasonCount"})


def __getattr__(name: str) -> Any:
    if name in _ENGINE:
        from core.scheduler import engine as module
    elif name in _RESULT:
        from core.scheduler import result as module  # type: ignore[no-redef]
    elif name == "Snapshot":
        from core.scheduler import snapshot as module  # type: ignore[no-redef]
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)


__all__ = [
    "DEFAULT_CONFIG",
    "DiskConfig",
    "DiskPlacement",
    "GroupRecord",
    "HostRecord",
    "NetworkConfig",
    "NetworkRecord",
    "NicPlacement",
    "Placement",
    "PlacementResult",
    "QuotaHeadroom",
    "ReasonCount",
    "SchedtagConfig",
    "ScheduleInput",
    "ScheduleInputError",
    "SchedulerConfig",
    "Snapshot",
    "StorageRecord",
    "Verdict",
    "ZoneRecord",
    "forecast",
    "place",
]
