"""Per-request facts derived once from the request and the snapshot, shared by filters and scorers.

Disks are grouped by what they ask of a storage (type, medium, id) and nics by what they ask of
a network (id, wire), so each group becomes one boolean mask over storages or networks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.scheduler.errors import ScheduleInputError
from core.scheduler.records import GroupRecord
from core.scheduler.request import DiskConfig, NetworkConfig, ScheduleInput, TagTarget
from core.scheduler.snapshot import Membership, Snapshot


@dataclass(slots=True)
class DiskGroup:
    """Disks asking the same of a storage; ``mask`` is over storages (static part only)."""

    mask: np.ndarray
    disks: list[tuple[int, DiskConfig]]  # (disk index, config), largest first
    total: int
    largest: int
    storage_id: str | None


@dataclass(slots=True)
class NicGroup:
    """Nics asking the same of a network; ``mask`` is over networks (static part only)."""

    mask: np.ndarray
    nics: list[tuple[int, NetworkConfig]]
    network_id: str | None


@dataclass(slots=True)
class RequestContext:
    req: ScheduleInput
    snap: Snapshot
    size: int
    disk_groups: list[DiskGroup]
    nic_groups: list[NicGroup]
    groups: list[GroupRecord]
    preferred_storages: np.ndarray  # over storages: score bonus for a storage with prefer/avoid tags
    preferred_networks: np.ndarray
    quota_left: int | None
    quota_reason: str
    batch_placed: dict[int, int] = field(default_factory=dict)


def build_context(req: ScheduleInput, snap: Snapshot) -> RequestContext:
    """Derive the request's masks; raises ``ScheduleInputError`` for unknown instance groups."""
    groups: list[GroupRecord] = []
    for gid in req.instance_groups:
        g = snap.groups.get(gid)
        if g is None:
            raise ScheduleInputError("instance_groups", f"instance group {gid} is unknown")
        groups.append(g)
    quota_left, quota_reason = _quota(req)
    return RequestContext(
        req=req, snap=snap, size=snap.size,
        disk_groups=_disk_groups(req, snap), nic_groups=_nic_groups(req, snap), groups=groups,
        preferred_storages=_tag_bonus(snap.storage_tags, len(snap.storage_ids), req, "storages"),
        preferred_networks=_tag_bonus(snap.network_tags, len(snap.network_ids), req, "networks"),
        quota_left=quota_left, quota_reason=quota_reason,
    )


def _only(index: dict[str, int], key: str, n: int) -> np.ndarray:
    """A mask over ``n`` slots with only ``key``'s set (none when ``key`` is unknown)."""
    only = np.zeros(n, np.bool_)
    slot = index.get(key)
    if slot is not None:
        only[slot] = True
    return only


def _disk_groups(req: ScheduleInput, snap: Snapshot) -> list[DiskGroup]:
    by_key: dict[tuple[str | None, str | None, str | None], list[tuple[int, DiskConfig]]] = {}
    for pos, d in enumerate(req.disks):
        idx = d.index if d.index is not None else pos
        by_key.setdefault((d.storage_type, d.medium, d.storage_id), []).append((idx, d))
    require = req.tags("storages", "require")
    exclude = req.tags("storages", "exclude")
    n = len(snap.storage_ids)
    out = []
    for (stype, medium, sid), disks in by_key.items():
        mask = snap.s_ok.copy()
        if stype:
            mask &= snap.s_type == snap.stype_codes.find(stype)
        if medium:
            mask &= snap.s_medium == snap.medium_codes.find(medium)
        if sid:
            mask &= _only(snap.storage_index, sid, n)
        for t in require:
            mask &= snap.storage_tags.mask(t, n)
        for t in exclude:
            mask &= ~snap.storage_tags.mask(t, n)
        disks.sort(key=lambda x: -x[1].size)
        sizes = [d.size for _, d in disks]
        out.append(DiskGroup(mask, disks, sum(sizes), max(sizes), sid))
    return out


def _nic_groups(req: ScheduleInput, snap: Snapshot) -> list[NicGroup]:
    by_key: dict[tuple[str | None, str | None], list[tuple[int, NetworkConfig]]] = {}
    for pos, nic in enumerate(req.networks):
        idx = nic.index if nic.index is not None else pos
        by_key.setdefault((nic.network, nic.wire), []).append((idx, nic))
    require = req.tags("networks", "require")
    exclude = req.tags("networks", "exclude")
    n = len(snap.network_ids)
    out = []
    for (net, wire), nics in by_key.items():
        mask = snap.n_ok.copy()
        if net:
            mask &= _only(snap.network_index, net, n)
        if wire:
            mask &= snap.n_wire == snap.wire_codes.find(wire)
        for t in require:
            mask &= snap.network_tags.mask(t, n)
        for t in exclude:
            mask &= ~snap.network_tags.mask(t, n)
        out.append(NicGroup(mask, nics, net))
    return out


def _tag_bonus(members: Membership, n: int, req: ScheduleInput, target: TagTarget) -> np.ndarray:
    bonus = np.zeros(n, np.float64)
    for t in req.tags(target, "prefer"):
        bonus += members.mask(t, n)
    for t in req.tags(target, "avoid"):
        bonus -= members.mask(t, n)
    return bonus


def _quota(req: ScheduleInput) -> tuple[int | None, str]:
    """How many instances the remaining quota allows (None = unlimited) and the binding limit."""
    q = req.quota
    if q is None:
        return None, ""
    per_instance = {
        "count": 1, "vcpu": req.vcpu_count, "memory": req.vmem_size,
        "storage": sum(d.size for d in req.disks),
    }
    left: int | None = None
    reason = ""
    for name, need in per_instance.items():
        remaining = getattr(q, name)
        if remaining is None or need <= 0:
            continue
        allowed = remaining // need
        if left is None or allowed < left:
            left, reason = allowed, name
    return left, reason
