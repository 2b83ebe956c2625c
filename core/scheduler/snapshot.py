"""The capacity snapshot: every host, storage and network as numpy columns.

A filter is a vector operation over all host slots, so the snapshot keeps one array per field
and the string-valued fields as small integer codes. It is kept warm: the region calls
``upsert_host``/``remove_host`` when a row changes and the engine calls ``apply_claim``/``release``
as it places, so nothing is rebuilt per request.

Removed hosts leave a slot with ``present = False`` that the next new host reuses.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from core.scheduler.capacity import offered
from core.scheduler.placement import Placement
from core.scheduler.records import GroupRecord, HostRecord, NetworkRecord, StorageRecord, ZoneRecord

# CPython 3.10+ allocates a new object for every ``frozenset()``; share one
_EMPTY: frozenset[str] = frozenset()
_NO_GROUPS: dict[str, int] = {}  # shared by every host without group members; never mutated

_HOST_ARRAYS: dict[str, Any] = {
    "present": np.bool_, "enabled": np.bool_, "online": np.bool_,
    "zone": np.int32, "region": np.int32, "manager": np.int32, "htype": np.int32, "arch": np.int32,
    "cpu_cap": np.float64, "cpu_used": np.float64, "mem_cap": np.float64, "mem_used": np.float64,
    "generation": np.int64, "creating": np.int32,
}


def normalize_arch(arch: str | None) -> str:
    """One spelling per architecture: Cloudpods and images use several."""
    a = (arch or "").strip().lower()
    if a in ("x86", "x86_64", "amd64", "x64", "i686", "i386"):
        return "x86_64"
    if a in ("arm", "arm64", "aarch64", "armv8"):
        return "aarch64"
    return a


class _Codes:
    """Interns strings to small ints; code 0 is the empty string, -1 means "no such value"."""

    def __init__(self) -> None:
        self._codes: dict[str, int] = {"": 0}

    def code(self, value: str) -> int:
        c = self._codes.get(value)
        if c is None:
            c = self._codes[value] = len(self._codes)
        return c

    def find(self, value: str) -> int:
        return self._codes.get(value, -1)

    def __len__(self) -> int:
        return len(self._codes)


class Membership:
    """key -> member slots (tags, cached images), with a boolean mask per key on demand.

    A key starts as a set of slots; once it holds many members it becomes a dense boolean
    array (1 byte per slot beats ~60 bytes per set member), so memory follows the real
    relationships whether they are sparse (a rare tag) or dense (a popular image).
    """

    def __init__(self) -> None:
        self._sparse: dict[str, set[int]] = {}
        self._dense: dict[str, np.ndarray] = {}
        self._masks: dict[str, np.ndarray] = {}

    def add(self, key: str, slot: int) -> None:
        dense = self._dense.get(key)
        if dense is not None:
            if slot >= dense.shape[0]:
                dense = self._dense[key] = _padded(dense, max(slot + 1, dense.shape[0] * 2))
            dense[slot] = True
            return
        members = self._sparse.setdefault(key, set())
        members.add(slot)
        self._masks.pop(key, None)
        if len(members) > 256 and len(members) * 32 > slot:
            dense = np.zeros(max(members) * 2 + 1, np.bool_)
            dense[np.fromiter(members, np.int64, len(members))] = True
            self._dense[key] = dense
            del self._sparse[key]

    def discard(self, key: str, slot: int) -> None:
        dense = self._dense.get(key)
        if dense is not None:
            if slot < dense.shape[0]:
                dense[slot] = False
            return
        members = self._sparse.get(key)
        if members is not None:
            members.discard(slot)
            self._masks.pop(key, None)

    def has(self, key: str, slot: int) -> bool:
        dense = self._dense.get(key)
        if dense is not None:
            return slot < dense.shape[0] and bool(dense[slot])
        members = self._sparse.get(key)
        return members is not None and slot in members

    def mask(self, key: str, size: int) -> np.ndarray:
        """Read-only boolean mask over ``size`` slots (callers combine, never write)."""
        dense = self._dense.get(key)
        if dense is not None:
            if dense.shape[0] < size:
                dense = self._dense[key] = _padded(dense, size)
            return dense[:size]
        m = self._masks.get(key)
        if m is None or m.shape[0] != size:
            m = np.zeros(size, dtype=np.bool_)
            members = self._sparse.get(key)
            if members:
                m[np.fromiter(members, dtype=np.int64, count=len(members))] = True
            m.flags.writeable = False
            self._masks[key] = m
        return m

    def nbytes(self) -> int:
        return (sum(m.nbytes for m in self._masks.values()) + sum(m.nbytes for m in self._dense.values())
                + sum(sys.getsizeof(s) + 32 * len(s) for s in self._sparse.values()))


def _padded(a: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, a.dtype)
    out[: a.shape[0]] = a
    return out


class _Columns:
    """Fixed-dtype columns that grow by doubling; ``view(name)`` covers the rows in use."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.n = 0
        self._cols = {name: np.zeros(16, dtype=dtype) for name, dtype in spec.items()}

    def add(self) -> int:
        if self.n == next(iter(self._cols.values())).shape[0]:
            for name, old in self._cols.items():
                new = np.zeros(old.shape[0] * 2, dtype=old.dtype)
                new[: self.n] = old[: self.n]
                self._cols[name] = new
        self.n += 1
        return self.n - 1

    def view(self, name: str) -> np.ndarray:
        return self._cols[name][: self.n]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._cols.values())


class Snapshot:
    """All placement-relevant state, column-wise; guarded by ``lock`` for batch placement."""

    # host columns (one entry per slot, see _HOST_ARRAYS)
    present: np.ndarray
    enabled: np.ndarray
    online: np.ndarray
    zone: np.ndarray
    region: np.ndarray
    manager: np.ndarray  # the cloudprovider a cloud's host came through (code 0: a host of this cloud)
    htype: np.ndarray
    arch: np.ndarray
    cpu_cap: np.ndarray
    cpu_used: np.ndarray
    mem_cap: np.ndarray
    mem_used: np.ndarray
    generation: np.ndarray
    creating: np.ndarray

    def __init__(
        self,
        hosts: Iterable[HostRecord] = (),
        storages: Iterable[StorageRecord] = (),
        networks: Iterable[NetworkRecord] = (),
        zones: Iterable[ZoneRecord] = (),
        groups: Iterable[GroupRecord] = (),
    ) -> None:
        self.lock = threading.RLock()
        self.zone_codes, self.region_codes, self.htype_codes, self.arch_codes = (
            _Codes(), _Codes(), _Codes(), _Codes())
        self.manager_codes = _Codes()
        self.stype_codes, self.medium_codes, self.wire_codes = _Codes(), _Codes(), _Codes()
        # hosts
        self.size = 0  # slots in use (present or free)
        self._cap = 0
        for name, dtype in _HOST_ARRAYS.items():
            setattr(self, name, np.zeros(0, dtype=dtype))
        self.host_ids: list[str] = []
        self.host_names: list[str] = []
        self.host_index: dict[str, int] = {}
        self._free_slots: list[int] = []
        self.host_storages: list[tuple[int, ...]] = []
        self.host_wires: list[tuple[int, ...]] = []
        self._host_tags: list[frozenset[str]] = []
        self._host_images: list[frozenset[str]] = []
        self._host_groups: list[dict[str, int]] = []
        self._host_caps: list[frozenset[str]] = []
        self.host_tags, self.host_images = Membership(), Membership()
        self.host_caps = Membership()  # what each host's driver declared (drivers.base.Capability)
        self._present_idx: np.ndarray | None = None
        self._hs_pairs: tuple[np.ndarray, np.ndarray] | None = None
        self._hw_pairs: tuple[np.ndarray, np.ndarray] | None = None
        # storages
        self.storage_ids: list[str] = []
        self.storage_index: dict[str, int] = {}
        self._s = _Columns({"type": np.int32, "medium": np.int32, "cap": np.float64, "used": np.float64,
                            "ok": np.bool_})
        self.storage_tags = Membership()
        self._storage_tagsets: list[frozenset[str]] = []
        # networks
        self.network_ids: list[str] = []
        self.network_index: dict[str, int] = {}
        self._n = _Columns({"wire": np.int32, "free": np.float64, "ok": np.bool_})
        self.network_tags = Membership()
        self._network_tagsets: list[frozenset[str]] = []
        self.wire_networks: dict[int, list[int]] = {}
        # zones and groups
        self.zone_tags: dict[str, frozenset[str]] = {}
        self.groups: dict[str, GroupRecord] = {}
        self.group_members: dict[str, dict[int, int]] = {}
        # claims applied here but not yet settled (DB write pending or refused), by id and by host
        self._claims: dict[str, Placement] = {}
        self._claims_by_host: dict[str, dict[str, Placement]] = {}
        # Claims in flight whose CPU and memory a DB read of their host already settled (see
        # ``_reapply_claims``): releasing one gives back everything but that usage.
        self._absorbed: set[str] = set()
        for s in storages:
            self.upsert_storage(s)
        for n in networks:
            self.upsert_network(n)
        for z in zones:
            self.upsert_zone(z)
        for g in groups:
            self.upsert_group(g)
        for h in hosts:
            self.upsert_host(h)

    # ---- public: reads -------------------------------------------------------------------
    # storage and network columns, over the storages/networks in use
    s_type = property(lambda self: self._s.view("type"))
    s_medium = property(lambda self: self._s.view("medium"))
    s_cap = property(lambda self: self._s.view("cap"))
    s_used = property(lambda self: self._s.view("used"))
    s_ok = property(lambda self: self._s.view("ok"))
    n_wire = property(lambda self: self._n.view("wire"))
    n_free = property(lambda self: self._n.view("free"))
    n_ok = property(lambda self: self._n.view("ok"))

    @property
    def host_count(self) -> int:
        return len(self.host_index)

    def present_idx(self) -> np.ndarray:
        """Slots holding a host, ascending (cached until a host is added or removed)."""
        if self._present_idx is None:
            self._present_idx = np.flatnonzero(self.present[: self.size])
        return self._present_idx

    def storage_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(host slot, storage index) for every attachment."""
        if self._hs_pairs is None:
            self._hs_pairs = _pairs(self.host_storages, self.present[: self.size])
        return self._hs_pairs

    def wire_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(host slot, wire code) for every attachment."""
        if self._hw_pairs is None:
            self._hw_pairs = _pairs(self.host_wires, self.present[: self.size])
        return self._hw_pairs

    def group_counts(self, group_id: str) -> np.ndarray:
        """Members of a group per host slot."""
        counts = np.zeros(self.size, dtype=np.int32)
        members = self.group_members.get(group_id)
        if members:
            counts[np.fromiter(members.keys(), np.int64, len(members))] = np.fromiter(
                members.values(), np.int32, len(members))
        return counts

    def zone_tag_mask(self, tag: str) -> np.ndarray:
        """Hosts whose zone carries ``tag``."""
        codes = [self.zone_codes.find(z) for z, tags in self.zone_tags.items() if tag in tags]
        return np.isin(self.zone[: self.size], np.array([c for c in codes if c >= 0], np.int32))

    def nbytes(self) -> int:
        """Approximate memory held by the snapshot (arrays, id lists and index maps)."""
        total = sum(getattr(self, n).nbytes for n in _HOST_ARRAYS)
        total += self._s.nbytes() + self._n.nbytes()
        for lst in (self.host_ids, self.host_names, self.storage_ids, self.network_ids):
            total += sys.getsizeof(lst) + sum(sys.getsizeof(x) for x in lst)
        for d in (self.host_index, self.storage_index, self.network_index):
            total += sys.getsizeof(d)
        for lst2 in (self.host_storages, self.host_wires, self._host_tags, self._host_caps, self._host_groups):
            total += sys.getsizeof(lst2) + sum(sys.getsizeof(x) for x in lst2)
        total += (self.host_tags.nbytes() + self.host_images.nbytes() + self.host_caps.nbytes()
                  + self.storage_tags.nbytes())
        for pairs in (self._hs_pairs, self._hw_pairs):
            if pairs is not None:
                total += pairs[0].nbytes + pairs[1].nbytes
        return int(total)

    # ---- public: writes (region side) ------------------------------------------------------
    def upsert_storage(self, rec: StorageRecord) -> None:
        with self.lock:
            i = self.storage_index.get(rec.id)
            if i is None:
                i = self._s.add()
                self.storage_ids.append(rec.id)
                self.storage_index[rec.id] = i
                self._storage_tagsets.append(_EMPTY)
            self.s_type[i] = self.stype_codes.code(rec.storage_type)
            self.s_medium[i] = self.medium_codes.code(rec.medium_type)
            self.s_cap[i] = offered(rec.capacity, rec.reserved, rec.cmtbound)
            # claims in flight stay counted, as for hosts
            self.s_used[i] = rec.used + sum(
                d.size for p in self._claims.values() for d in p.disks if d.storage_id == rec.id)
            self.s_ok[i] = rec.enabled and rec.status == "online"
            _retag(self.storage_tags, self._storage_tagsets, i, rec.schedtags)

    def upsert_network(self, rec: NetworkRecord) -> None:
        with self.lock:
            i = self.network_index.get(rec.id)
            wire = self.wire_codes.code(rec.wire_id)
            if i is None:
                i = self._n.add()
                self.network_ids.append(rec.id)
                self.network_index[rec.id] = i
                self._network_tagsets.append(_EMPTY)
            else:
                self.wire_networks[int(self.n_wire[i])].remove(i)
            self.n_wire[i] = wire
            self.wire_networks.setdefault(wire, []).append(i)
            self.n_free[i] = rec.free_ips - sum(
                1 for p in self._claims.values() for n in p.nics if n.network_id == rec.id)
            self.n_ok[i] = rec.enabled and rec.server_type == "guest"
            _retag(self.network_tags, self._network_tagsets, i, rec.schedtags)

    def upsert_zone(self, rec: ZoneRecord) -> None:
        with self.lock:
            self.zone_codes.code(rec.id)
            self.zone_tags[rec.id] = frozenset(rec.schedtags)

    def upsert_group(self, rec: GroupRecord) -> None:
        with self.lock:
            self.groups[rec.id] = rec
            self.group_members.setdefault(rec.id, {})

    def upsert_host(self, rec: HostRecord) -> None:
        """Replace a host's state with the DB's view, plus the claims still in flight on it.

        Claims in flight are told apart by generation (``_reapply_claims``): one the row has moved
        past is in the row already or never will be, so it is not counted again.
        """
        with self.lock:
            storages = tuple(self._storage_slot(rec, sid) for sid in rec.storage_ids)
            i = self.host_index.get(rec.id)
            if i is None:
                i = self._new_slot(rec.id)
            self.host_names[i] = rec.name or rec.id
            self.present[i] = True
            self.enabled[i] = rec.enabled
            self.online[i] = rec.host_status == "online"
            self.zone[i] = self.zone_codes.code(rec.zone_id)
            self.region[i] = self.region_codes.code(rec.cloudregion_id)
            self.manager[i] = self.manager_codes.code(rec.manager_id)
            self.htype[i] = self.htype_codes.code(rec.host_type)
            self.arch[i] = self.arch_codes.code(normalize_arch(rec.cpu_arch))
            self.cpu_cap[i] = offered(rec.cpu_count, rec.cpu_reserved, rec.cpu_cmtbound)
            self.cpu_used[i] = rec.cpu_used
            self.mem_cap[i] = offered(rec.mem_size, rec.mem_reserved, rec.mem_cmtbound)
            self.mem_used[i] = rec.mem_used
            self.generation[i] = rec.generation
            self.creating[i] = rec.creating
            if self.host_storages[i] != storages:
                self.host_storages[i] = storages
                self._hs_pairs = None
            wires = tuple(self.wire_codes.code(w) for w in rec.wire_ids)
            if self.host_wires[i] != wires:
                self.host_wires[i] = wires
                self._hw_pairs = None
            _retag(self.host_tags, self._host_tags, i, rec.schedtags)
            _retag(self.host_images, self._host_images, i, rec.cached_images)
            _retag(self.host_caps, self._host_caps, i, rec.capabilities)
            self._set_groups(i, {g: int(c) for g, c in rec.group_counts.items() if c > 0})
            self._reapply_claims(i, rec.id, rec.generation, whole=True)

    def remove_host(self, host_id: str) -> bool:
        """Forget a host; returns False when it was not known."""
        with self.lock:
            i = self.host_index.pop(host_id, None)
            if i is None:
                return False
            self.present[i] = False
            self.enabled[i] = False
            _retag(self.host_tags, self._host_tags, i, _EMPTY)
            _retag(self.host_images, self._host_images, i, _EMPTY)
            _retag(self.host_caps, self._host_caps, i, _EMPTY)
            self._set_groups(i, {})
            self.host_storages[i] = ()
            self.host_wires[i] = ()
            self.host_ids[i] = ""
            self._free_slots.append(i)
            self._present_idx = self._hs_pairs = self._hw_pairs = None
            for p in self._claims_by_host.pop(host_id, {}).values():
                self._account_shared(p, -1)
                del self._claims[p.claim_id]
                self._absorbed.discard(p.claim_id)
            return True

    def settle(self, placements: Iterable[Placement], generations: dict[str, int]) -> None:
        """The DB accepted these claims: keep their usage, forget them as claims in flight,
        and record the generation each claim left on its host row.

        The generation only moves from the one the claim was decided against: if the host was
        refreshed meanwhile, its (usage, generation) pair came from one DB read and stays.
        """
        with self.lock:
            for p in placements:
                self._forget(p.claim_id)
            for host_id, gen in generations.items():
                i = self.host_index.get(host_id)
                if i is not None and self.generation[i] == gen - 1:
                    self.generation[i] = gen

    def refresh_usage(self, host_id: str, cpu_used: float, mem_used: float, generation: int) -> None:
        """Take a host's usage and generation from one read of its DB row (after a conflict).

        Claims still in flight on the host are added on top, as in ``upsert_host``.
        """
        with self.lock:
            i = self.host_index.get(host_id)
            if i is None:
                return
            self.cpu_used[i] = cpu_used
            self.mem_used[i] = mem_used
            self.generation[i] = generation
            self._reapply_claims(i, host_id, generation, whole=False)

    # ---- public: claims (engine side) ------------------------------------------------------
    def apply_claim(self, p: Placement) -> None:
        """Consume the placement's resources in the snapshot (idempotent per ``claim_id``)."""
        with self.lock:
            if p.claim_id in self._claims:
                return
            self._claims[p.claim_id] = p
            self._claims_by_host.setdefault(p.host_id, {})[p.claim_id] = p
            self._account(p, +1)

    def release(self, p: Placement | str) -> bool:
        """Give a claim's resources back; releasing twice (or an unknown claim) is a no-op."""
        claim_id = p if isinstance(p, str) else p.claim_id
        with self.lock:
            absorbed = claim_id in self._absorbed
            claim = self._forget(claim_id)
            if claim is None:
                return False
            self._account(claim, -1, usage=not absorbed)
            return True

    def live_claims(self) -> int:
        return len(self._claims)

    # ---- private ---------------------------------------------------------------------------
    def _account(self, p: Placement, sign: int, *, usage: bool = True) -> None:
        h = self.host_index.get(p.host_id)
        if h is not None:
            self._account_host(h, p, sign, usage=usage)
        self._account_shared(p, sign)

    def _reapply_claims(self, i: int, host_id: str, db_generation: int, *, whole: bool) -> None:
        """After host ``i``'s usage was taken from a DB read at ``db_generation``: put the claims in
        flight on it back on top. A claim decided against an older generation is either committed
        (its usage is in what was read) or will conflict (the guarded UPDATE can no longer match):
        adding it again over-counted the host until its next conflict, so a free CPU looked taken
        and a create that fitted was refused. ``whole``: the read also reset the in-flight counts."""
        for p in self._claims_by_host.get(host_id, {}).values():
            settled = p.generation < db_generation
            if settled:
                self._absorbed.add(p.claim_id)
            if whole:
                self._account_host(i, p, +1, usage=not (settled or p.claim_id in self._absorbed))
            elif not (settled or p.claim_id in self._absorbed):
                self.cpu_used[i] += p.vcpu
                self.mem_used[i] += p.vmem

    def _account_host(self, h: int, p: Placement, sign: int, *, usage: bool = True) -> None:
        if usage:
            self.cpu_used[h] += sign * p.vcpu
            self.mem_used[h] += sign * p.vmem
        self.creating[h] += sign
        if p.groups:
            counts = dict(self._host_groups[h])
            for g in p.groups:
                counts[g] = counts.get(g, 0) + sign
            self._set_groups(h, {g: c for g, c in counts.items() if c > 0})

    def _account_shared(self, p: Placement, sign: int) -> None:
        for d in p.disks:
            s = self.storage_index.get(d.storage_id)
            if s is not None:
                self.s_used[s] += sign * d.size
        for n in p.nics:
            k = self.network_index.get(n.network_id)
            if k is not None:
                self.n_free[k] -= sign

    def _forget(self, claim_id: str) -> Placement | None:
        self._absorbed.discard(claim_id)
        p = self._claims.pop(claim_id, None)
        if p is not None:
            by_host = self._claims_by_host.get(p.host_id)
            if by_host is not None:
                by_host.pop(claim_id, None)
                if not by_host:
                    del self._claims_by_host[p.host_id]
        return p

    def _storage_slot(self, rec: HostRecord, sid: str) -> int:
        s = self.storage_index.get(sid)
        if s is None:
            raise ValueError(f"host {rec.id} refers to unknown storage {sid}; upsert the storage first")
        return s

    def _set_groups(self, i: int, counts: dict[str, int]) -> None:
        for g in self._host_groups[i]:
            if g not in counts:
                self.group_members.get(g, {}).pop(i, None)
        for g, c in counts.items():
            self.group_members.setdefault(g, {})[i] = c
        self._host_groups[i] = counts if counts else _NO_GROUPS

    def _new_slot(self, host_id: str) -> int:
        if self._free_slots:
            i = self._free_slots.pop()
        else:
            i = self.size
            if i >= self._cap:
                self._grow(max(64, self._cap * 2))
            self.size += 1
            self.host_ids.append("")
            self.host_names.append("")
            self.host_storages.append(())
            self.host_wires.append(())
            self._host_tags.append(_EMPTY)
            self._host_images.append(_EMPTY)
            self._host_caps.append(_EMPTY)
            self._host_groups.append(_NO_GROUPS)
        self.host_ids[i] = host_id
        self.host_index[host_id] = i
        self._present_idx = self._hs_pairs = self._hw_pairs = None
        return i

    def _grow(self, cap: int) -> None:
        for name in _HOST_ARRAYS:
            old = getattr(self, name)
            new = np.zeros(cap, dtype=old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)
        self._cap = cap


def _retag(members: Membership, current: list[frozenset[str]], i: int, new: frozenset[str]) -> None:
    old = current[i]
    if old == new:
        return
    for t in old - new:
        members.discard(t, i)
    for t in new - old:
        members.add(t, i)
    current[i] = frozenset(new) if new else _EMPTY


def _pairs(lists: list[tuple[int, ...]], present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lens = np.fromiter((len(x) for x in lists), np.int64, len(lists))
    lens[~present] = 0
    owner = np.repeat(np.arange(len(lists), dtype=np.int64), lens)
    flat = np.fromiter((v for x, p in zip(lists, present, strict=True) if p for v in x), np.int64, int(lens.sum()))
    return owner, flat
