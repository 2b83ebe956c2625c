"""The scheduler: filters and scorers over a warm capacity snapshot (ARCHITECTURE decision 5).

    snap = Snapshot(hosts=[HostRecord(...)], storages=[...], networks=[...])
    result = place(ScheduleInput(vcpu_count=2, vmem_size=2048, count=3), snap)
    result.placements        # [Placement(host_id=..., disks=..., nics=...)]
    result.explanation()     # "placed 2 of 3 (of 10 hosts): 8 host(s) lack free memory; ..."
    forecast(req, snap).to_forecast()   # Cloudpods' /scheduler/forecast reply
"""
from __future__ import annotations

from core.scheduler.engine import DEFAULT_CONFIG, SchedulerConfig, forecast, place
from core.scheduler.errors import ScheduleInputError
from core.scheduler.placement import DiskPlacement, NicPlacement, Placement
from core.scheduler.records import GroupRecord, HostRecord, NetworkRecord, StorageRecord, ZoneRecord
from core.scheduler.request import DiskConfig, NetworkConfig, QuotaHeadroom, SchedtagConfig, ScheduleInput
from core.scheduler.result import PlacementResult, ReasonCount
from core.scheduler.snapshot import Snapshot
from core.scheduler.verdict import Verdict

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
