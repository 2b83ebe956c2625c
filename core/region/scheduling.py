"""The region's side of scheduling: a warm snapshot built from DB rows, and place + claim.

The snapshot (``core.scheduler.Snapshot``) is built once and then refreshed incrementally: hosts
and storages whose ``updated_at`` moved since the last refresh are upserted (a claim's UPDATE
bumps it too), vanished hosts are removed, and networks' free address counts are recomputed
(one GROUP BY). Every replica keeps its own; claims are generation-guarded in the DB, so a stale
snapshot costs a retry, never an over-commit.
"""
from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from core.region import ipam
from core.region.models import Host, HostStorage, HostWire, Network, Storage, Zone
from core.region.models.host import HOST_TABLE
from core.scheduler import HostRecord, NetworkRecord, ScheduleInput, StorageRecord
from core.scheduler.records import ZoneRecord

if TYPE_CHECKING:  # the snapshot, the claims and the engine need numpy: loaded at the first use
    from core.scheduler import PlacementResult, Snapshot


def schedtags_of(meta: dict[str, Any] | None) -> frozenset[str]:
    """A host's or zone's schedtags, from its metadata (tags): each key, and ``key=value``; a user
    tag (``user:<key>``) also without its prefix. ``--schedtag rack=r1:require`` then matches them."""
    out: set[str] = set()
    for k, v in (meta or {}).items():
        for key in {str(k), str(k).removeprefix("user:")}:
            out.add(key)
            if v not in (None, ""):
                out.add(f"{key}={v}")
    return frozenset(out)


def host_record(h: Host, storage_ids: tuple[str, ...], wire_ids: tuple[str, ...], region_id: str) -> HostRecord:
    if h.host_type == "baremetal":  # one server takes the whole machine: one slot, full once it is taken
        taken = 1 if h.cpu_used > 0 or h.mem_used > 0 else 0
        return HostRecord(
            id=h.id, name=h.name, zone_id=h.zone_id, cloudregion_id=region_id, manager_id=h.manager_id or "",
            host_type=h.host_type,
            enabled=h.enabled and not h.is_maintenance, host_status=h.host_status, cpu_arch=h.cpu_arch or "x86_64",
            cpu_count=1, cpu_cmtbound=1.0, cpu_used=taken, mem_size=1, mem_cmtbound=1.0, mem_used=taken,
            storage_ids=storage_ids, wire_ids=wire_ids, generation=h.generation, schedtags=schedtags_of(h.meta),
            capabilities=frozenset(str(c) for c in (h.capabilities or ())))
    return HostRecord(
        id=h.id, name=h.name, zone_id=h.zone_id, cloudregion_id=region_id, manager_id=h.manager_id or "",
        host_type=h.host_type,
        enabled=h.enabled and not h.is_maintenance, host_status=h.host_status, cpu_arch=h.cpu_arch,
        cpu_count=h.cpu_count, cpu_reserved=h.cpu_reserved, cpu_cmtbound=h.cpu_cmtbound, cpu_used=h.cpu_used,
        mem_size=h.mem_size, mem_reserved=h.mem_reserved, mem_cmtbound=h.mem_cmtbound, mem_used=h.mem_used,
        storage_ids=storage_ids, wire_ids=wire_ids, generation=h.generation, schedtags=schedtags_of(h.meta),
        capabilities=frozenset(str(c) for c in (h.capabilities or ())))


def storage_record(s: Storage) -> StorageRecord:
    return StorageRecord(id=s.id, storage_type=s.storage_type, medium_type=s.medium_type, capacity=s.capacity,
                         reserved=s.reserved, cmtbound=s.cmtbound, used=s.used_capacity, enabled=s.enabled,
                         status=s.status)


class SnapshotCache:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._snap: Snapshot | None = None  # made at the first use (numpy: ~0.1 s CPU, ~20 MB)
        self._host_mark: datetime | None = None
        self._storage_mark: datetime | None = None

    @property
    def snap(self) -> Snapshot:
        with self.lock:
            if self._snap is None:
                from core.scheduler.snapshot import Snapshot

                self._snap = Snapshot()
            return self._snap

    def refresh(self, session: Session) -> Snapshot:
        with self.lock:
            snap = self.snap
            st_stmt = select(Storage)
            if self._storage_mark is not None:
                st_stmt = st_stmt.where(Storage.updated_at >= self._storage_mark)
            for s in session.scalars(st_stmt):
                snap.upsert_storage(storage_record(s))
                self._storage_mark = max(self._storage_mark or s.updated_at, s.updated_at)
            for z in session.scalars(select(Zone)):
                snap.upsert_zone(ZoneRecord(id=z.id, schedtags=schedtags_of(z.meta)))
            used = ipam.used_counts(session)
            for n in session.scalars(select(Network)):
                snap.upsert_network(NetworkRecord(id=n.id, wire_id=n.wire_id, name=n.name,
                                                  free_ips=ipam.size_of(n) - used.get(n.id, 0),
                                                  enabled=n.status == "available", server_type=n.server_type))
            h_stmt = select(Host)
            if self._host_mark is not None:
                h_stmt = h_stmt.where(Host.updated_at >= self._host_mark)
            changed = list(session.scalars(h_stmt))
            if changed:
                ids = [h.id for h in changed]
                sts: dict[str, list[str]] = {}
                for hid, sid in session.execute(select(HostStorage.host_id, HostStorage.storage_id)
                                                .where(HostStorage.host_id.in_(ids))):
                    sts.setdefault(hid, []).append(sid)
                wires: dict[str, list[str]] = {}
                for hid, wid in session.execute(select(HostWire.host_id, HostWire.wire_id)
                                                .where(HostWire.host_id.in_(ids))):
                    wires.setdefault(hid, []).append(wid)
                regions: dict[str, str] = dict(session.execute(select(Zone.id, Zone.cloudregion_id)).tuples().all())
                for h in changed:
                    snap.upsert_host(host_record(h, tuple(sorted(sts.get(h.id, ()))),
                                                 tuple(sorted(wires.get(h.id, ()))), regions.get(h.zone_id, "")))
                    self._host_mark = max(self._host_mark or h.updated_at, h.updated_at)
            live = set(session.scalars(select(Host.id)))
            for hid in [h for h in snap.host_index if h not in live]:
                snap.remove_host(hid)
            return snap

    def place(self, session: Session, req: ScheduleInput) -> PlacementResult:
        """Place and claim in the caller's transaction (hosts.cpu_used/mem_used, generation-guarded).

        If that transaction rolls back, the claims the snapshot settled never reached the DB, so
        the next refresh re-reads every host (``invalidate``).
        """
        from core.scheduler.claims import place_and_claim

        with self.lock:
            snap = self.refresh(session)
            session.info["sched_claimed"] = True
            result = place_and_claim(req, snap, session, HOST_TABLE)
            # Replicas placing at once on the same best hosts can out-race one claim loop; a row
            # committed out of timestamp order also hides from the incremental refresh. Re-read
            # every host and place what is still missing, a few times, before calling it a failure.
            for _ in range(3):
                short = result.req_count - len(result.placements)
                if short <= 0 or "conflicting" not in (result.stop_reason or ""):
                    break
                self.invalidate()
                more = place_and_claim(req.model_copy(update={"count": short}), self.refresh(session), session,
                                       HOST_TABLE)
                result.placements += more.placements
                result.conflicts += more.conflicts
                result.rejected, result.exhausted, result.stop_reason = more.rejected, more.exhausted, more.stop_reason
            return result

    def claim_delta(self, session: Session, host_id: str, vcpu: int, vmem: int) -> str | None:
        """Claim a change of what ``host_id`` runs (change-config) in the caller's transaction,
        generation-guarded like ``place``; None when claimed, else why not (``claims.claim_delta``)."""
        from core.scheduler.claims import Delta, claim_delta

        with self.lock:
            snap = self.refresh(session)
            session.info["sched_claimed"] = True
            return claim_delta(Delta(host_id, vcpu, vmem), snap, session, HOST_TABLE)

    def forecast(self, session: Session, req: ScheduleInput) -> PlacementResult:
        """The same decisions ``place`` would make now, keeping nothing."""
        from core.scheduler.engine import forecast  # numpy loads at the first use

        with self.lock:
            return forecast(req, self.refresh(session))

    def invalidate(self) -> None:
        with self.lock:
            self._host_mark = self._storage_mark = None

    def reset(self) -> None:
        with self.lock:
            self._snap = None
            self._host_mark = self._storage_mark = None


CACHE = SnapshotCache()


@event.listens_for(Session, "after_rollback")
def _claims_rolled_back(session: Session) -> None:
    if session.info.pop("sched_claimed", False):
        CACHE.invalidate()


@event.listens_for(Session, "after_commit")
def _claims_committed(session: Session) -> None:
    session.info.pop("sched_claimed", None)


def provider_snapshot(db: Any) -> Any:
    """For ``core.scheduler.provider.set_snapshot_provider``: refresh and return the snapshot."""
    def get() -> Snapshot:
        with db.session() as s:
            return CACHE.refresh(s)
    return get


def usable_managers(session: Session, cred: Any) -> list[str]:
    """The cloudproviders whose hosts ``cred``'s project may be placed on: those it can see (its own
    cloud accounts' and shared ones), as ``ScheduleInput.usable_managers``."""
    from core.region.models import Cloudprovider
    from core.region.registry import get_manager

    return list(session.scalars(get_manager("cloudproviders").visible(select(Cloudprovider.id), cred)))


_REF_KEYS = ((("prefer_zone", "prefer_zone_id"), "zones"), (("prefer_host", "prefer_host_id"), "hosts"),
             (("prefer_region", "prefer_region_id"), "cloudregions"),
             (("prefer_manager", "prefer_manager_id"), "cloudproviders"))
_NIC_KEYS = ((("network", "network_id"), "networks"), (("wire", "wire_id"), "wires"))


def resolve_schedule_refs(session: Session, cred: Any, body: dict[str, Any]) -> dict[str, Any]:
    """For ``core.scheduler.provider.set_ref_resolver``: a scheduler body's references (zone, host,
    region, networks, wires, storages, images) by id or name become ids; an unknown one stays as
    given, so the scheduler's own answer ("network x not found") names it."""
    from core.errors import ResourceNotFoundError
    from core.glance.service import get_image
    from core.region.registry import get_manager

    def ref(plural: str, v: Any) -> Any:
        if not isinstance(v, str) or not v:
            return v
        try:
            return str(get_manager(plural).fetch(session, cred, v).id)
        except ResourceNotFoundError:
            return v

    def fix(d: dict[str, Any], table: tuple[tuple[tuple[str, ...], str], ...]) -> dict[str, Any]:
        d = dict(d)
        for keys, plural in table:
            for k in keys:
                if k in d:
                    d[k] = ref(plural, d[k])
        return d

    out = fix(body, _REF_KEYS)
    out["usable_managers"] = usable_managers(session, cred)  # from the token, whatever the body said
    for key in ("networks", "nets"):
        if isinstance(out.get(key), list):
            out[key] = [fix(n, _NIC_KEYS) if isinstance(n, dict) else n for n in out[key]]
    if isinstance(out.get("disks"), list):
        disks = []
        for d in out["disks"]:
            if isinstance(d, dict):
                d = fix(d, ((("storage", "storage_id"), "storages"),))
                if isinstance(d.get("image_id"), str) and d["image_id"]:
                    try:
                        d = {**d, "image_id": get_image(session, d["image_id"], cred).id}
                    except ResourceNotFoundError:
                        pass
            disks.append(d)
        out["disks"] = disks
    return out
