"""Filters, one module each (vCPUs and memory share capacity.py), run in the order of
``DEFAULT_FILTERS`` (cheap and static first).

The table is explicit on purpose: discovery by scanning breaks a frozen binary (STYLE pitfall 2).
"""
from __future__ import annotations

from core.scheduler.filters.arch import ArchFilter
from core.scheduler.filters.base import Filter, Rejection
from core.scheduler.filters.capability import CapabilityFilter
from core.scheduler.filters.capacity import CpuFilter, MemoryFilter
from core.scheduler.filters.group import GroupFilter
from core.scheduler.filters.host import HostFilter
from core.scheduler.filters.hypervisor import HypervisorFilter
from core.scheduler.filters.network import NetworkFilter
from core.scheduler.filters.quota import QuotaFilter
from core.scheduler.filters.schedtag import SchedtagFilter
from core.scheduler.filters.status import StatusFilter
from core.scheduler.filters.storage import StorageFilter
from core.scheduler.filters.zone import ZoneFilter


def default_filters() -> tuple[Filter, ...]:
    return (StatusFilter(), HypervisorFilter(), CapabilityFilter(), ZoneFilter(), HostFilter(), ArchFilter(),
            SchedtagFilter(), QuotaFilter(), GroupFilter(), CpuFilter(), MemoryFilter(),
            StorageFilter(), NetworkFilter())


__all__ = [
    "ArchFilter", "CapabilityFilter", "CpuFilter", "Filter", "GroupFilter", "HostFilter", "HypervisorFilter",
    "MemoryFilter", "NetworkFilter", "QuotaFilter", "Rejection", "SchedtagFilter", "StatusFilter",
    "StorageFilter", "ZoneFilter", "default_filters",
]
