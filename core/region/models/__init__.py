"""Region tables (registered through ``core.db.models``); agents.py: join tokens and agent bindings."""
from __future__ import annotations

from core.region.models.agents import AgentBinding, JoinToken
from core.region.models.cloud import Cachedimage, Cloudaccount, Cloudprovider
from core.region.models.compute import Disk, Server
from core.region.models.host import Host, HostStorage, HostWire, Storage
from core.region.models.infra import Cloudregion, Vpc, Wire, Zone
from core.region.models.misc import (
    DomainQuota,
    Eip,
    GuestSecgroup,
    InstanceSnapshot,
    Keypair,
    Quota,
    Secgroup,
    SecgroupRule,
    Snapshot,
)
from core.region.models.network import IpAllocation, Network
from core.tasks.models import Task, WorkItem  # the task tables ship with the region branch

__all__ = [
    "AgentBinding", "Cachedimage", "Cloudaccount", "Cloudprovider", "Cloudregion", "Disk", "DomainQuota", "Eip",
    "GuestSecgroup", "Host", "HostStorage", "HostWire", "InstanceSnapshot", "IpAllocation", "JoinToken", "Keypair",
    "Network", "Quota", "Secgroup", "SecgroupRule", "Server", "Snapshot", "Storage", "Task", "Vpc", "Wire", "WorkItem",
    "Zone",
]
