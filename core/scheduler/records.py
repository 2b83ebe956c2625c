"""Plain input records the scheduler's snapshot is built from.

The region turns its DB rows into these (the scheduler never imports region models), and tests
and the benchmark build them directly. Sizes are MB, like Cloudpods' API.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

GroupPolicy = Literal["affinity", "anti_affinity"]


@dataclass(frozen=True, slots=True)
class HostRecord:
    """One host as the scheduler sees it (capacity, usage, placement facts)."""

    id: str
    name: str = ""
    zone_id: str = ""
    cloudregion_id: str = ""
    # the cloudprovider a public/private cloud's host was synced through ("" for this cloud's own)
    manager_id: str = ""
    host_type: str = "hypervisor"
    enabled: bool = True
    host_status: str = "online"
    cpu_arch: str = "x86_64"
    cpu_count: int = 0
    cpu_reserved: int = 0
    cpu_cmtbound: float = 8.0
    cpu_used: int = 0
    mem_size: int = 0
    mem_reserved: int = 0
    mem_cmtbound: float = 1.0
    mem_used: int = 0
    storage_ids: tuple[str, ...] = ()
    wire_ids: tuple[str, ...] = ()
    schedtags: frozenset[str] = frozenset()
    cached_images: frozenset[str] = frozenset()
    # what the host's driver declared (drivers.base.Capability values), e.g. "cold_migrate"
    capabilities: frozenset[str] = frozenset()
    # instance-group id -> how many of the group's servers already run here
    group_counts: Mapping[str, int] = field(default_factory=dict)
    # servers currently being created on this host (deploy load)
    creating: int = 0
    generation: int = 0


@dataclass(frozen=True, slots=True)
class StorageRecord:
    """One storage; local storages attach to one host, shared ones (rbd, nfs) to many."""

    id: str
    storage_type: str = "local"
    medium_type: str = "ssd"
    capacity: int = 0
    reserved: int = 0
    cmtbound: float = 1.0
    used: int = 0
    enabled: bool = True
    status: str = "online"
    schedtags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    """One IP network on a wire; a host reaches it when the host is attached to the wire."""

    id: str
    wire_id: str
    free_ips: int = 0
    name: str = ""
    enabled: bool = True
    server_type: str = "guest"
    schedtags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ZoneRecord:
    """A zone only matters to the scheduler for its schedtags."""

    id: str
    schedtags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """An instance group: hard (``strict``) or soft (anti-)affinity.

    ``granularity`` is how many members one host may hold under anti-affinity (Cloudpods' field).
    """

    id: str
    policy: GroupPolicy = "anti_affinity"
    strict: bool = True
    granularity: int = 1
