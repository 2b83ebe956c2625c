"""Generation-guarded claims on a real SQLite file DB, including concurrent batches in threads."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    insert,
    select,
    update,
)

from core.scheduler import HostRecord, ScheduleInput, Snapshot, place
from core.scheduler.claims import NO_ROOM, Delta, claim, claim_delta, place_and_claim, read_usage
from core.scheduler.placement import Placement
from tests.unit.scheduler.helpers import GB

md = MetaData()
HOSTS = Table(
    "test_hosts", md,
    Column("id", String(64), primary_key=True),
    Column("generation", Integer, nullable=False, default=0),
    Column("cpu_count", Integer, nullable=False),
    Column("mem_size", Integer, nullable=False),
    Column("cpu_used", Float, nullable=False, default=0),
    Column("mem_used", Float, nullable=False, default=0),
)


def make_db(path: Path, n_hosts: int, cpu: int = 8, mem: int = 8 * GB) -> Engine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(HOSTS), [{"id": f"h{i}", "generation": 0, "cpu_count": cpu, "mem_size": mem,
                                      "cpu_used": 0, "mem_used": 0} for i in range(n_hosts)])
    return engine


def load_snapshot(engine: Engine) -> Snapshot:
    """What a controller replica builds from the DB at start."""
    with engine.connect() as conn:
        rows = conn.execute(select(HOSTS)).all()
    return Snapshot(hosts=[HostRecord(id=r.id, cpu_count=r.cpu_count, cpu_cmtbound=1.0, mem_size=r.mem_size,
                                      mem_cmtbound=1.0, cpu_used=int(r.cpu_used), mem_used=int(r.mem_used),
                                      generation=r.generation) for r in rows])


def db_usage(engine: Engine) -> dict[str, tuple[float, float, int, int, int]]:
    with engine.connect() as conn:
        return {r.id: (r.cpu_used, r.mem_used, r.cpu_count, r.mem_size, r.generation)
                for r in conn.execute(select(HOSTS))}


def test_claim_writes_usage_and_bumps_generation(tmp_path: Path) -> None:
    engine = make_db(tmp_path / "c.db", 3)
    snap = load_snapshot(engine)
    result = place(ScheduleInput(vcpu_count=2, vmem_size=GB, count=4), snap)
    with engine.connect() as conn:
        out = claim(conn, HOSTS, result.placements)
    assert len(out.committed) == 4 and out.conflicts == []
    usage = db_usage(engine)
    per_host: dict[str, int] = {}
    for p in result.placements:
        per_host[p.host_id] = per_host.get(p.host_id, 0) + 1
    for hid, k in per_host.items():
        assert usage[hid][0] == 2 * k and usage[hid][1] == GB * k
        assert usage[hid][4] == 1  # one UPDATE per host, however many placements
    assert out.generations == {hid: 1 for hid in per_host}


def test_conflict_returns_only_that_hosts_placements(tmp_path: Path) -> None:
    engine = make_db(tmp_path / "c.db", 3)
    snap = load_snapshot(engine)
    result = place(ScheduleInput(vcpu_count=1, vmem_size=GB, count=3), snap)
    assert len({p.host_id for p in result.placements}) == 3
    victim = result.placements[1].host_id
    with engine.begin() as conn:  # another writer changed that host meanwhile
        conn.execute(update(HOSTS).where(HOSTS.c.id == victim).values(cpu_used=5, generation=HOSTS.c.generation + 1))
    with engine.connect() as conn:
        out = claim(conn, HOSTS, result.placements)
        assert [p.host_id for p in out.conflicts] == [victim]
        assert len(out.committed) == 2
        assert read_usage(conn, HOSTS, [victim])[victim] == (5.0, 0.0, 1)
    assert db_usage(engine)[victim][0] == 5  # untouched by the failed claim


def test_claim_joins_the_callers_transaction(tmp_path: Path) -> None:
    engine = make_db(tmp_path / "c.db", 1)
    snap = load_snapshot(engine)
    result = place(ScheduleInput(), snap)
    with engine.connect() as conn:
        conn.begin()
        claim(conn, HOSTS, result.placements)
        conn.rollback()  # the caller decided otherwise: nothing was written
    assert db_usage(engine)["h0"][0] == 0


def test_stale_replica_replaces_only_conflicts(tmp_path: Path) -> None:
    engine = make_db(tmp_path / "c.db", 4, cpu=4)
    a, b = load_snapshot(engine), load_snapshot(engine)
    req = ScheduleInput(vcpu_count=4, vmem_size=GB, count=2)
    with engine.connect() as conn:
        ra = place_and_claim(req, a, conn, HOSTS)
    with engine.connect() as conn:
        rb = place_and_claim(req, b, conn, HOSTS)  # b has not seen a's claims
    assert ra.ok and rb.ok
    assert {p.host_id for p in ra.placements}.isdisjoint({p.host_id for p in rb.placements})
    assert all(u[0] <= u[2] for u in db_usage(engine).values())
    with engine.connect() as conn:
        rc = place_and_claim(req, b, conn, HOSTS)
    assert rc.placements == [] and "lack free vCPUs" in rc.explanation()


def _run_concurrently(engine: Engine, snapshots: list[Snapshot], req: ScheduleInput,
                      rounds: int) -> tuple[list[int], int]:
    placed = [0] * len(snapshots)
    conflicts = [0] * len(snapshots)
    errors: list[BaseException] = []
    start = threading.Barrier(len(snapshots))

    def worker(k: int) -> None:
        try:
            start.wait()
            with engine.connect() as conn:
                for _ in range(rounds):
                    r = place_and_claim(req, snapshots[k], conn, HOSTS, max_rounds=20)
                    placed[k] += len(r.placements)
                    conflicts[k] += r.conflicts
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(snapshots))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return placed, sum(conflicts)


def _assert_never_overcommitted(engine: Engine, placed: int, vcpu: int, vmem: int) -> None:
    usage = db_usage(engine)
    for hid, (cpu_used, mem_used, cpu_count, mem_size, _gen) in usage.items():
        assert cpu_used <= cpu_count, f"{hid} overcommitted: {cpu_used} > {cpu_count}"
        assert mem_used <= mem_size, f"{hid} overcommitted: {mem_used} > {mem_size}"
    assert sum(u[0] for u in usage.values()) == placed * vcpu
    assert sum(u[1] for u in usage.values()) == placed * vmem


def test_concurrent_replicas_never_overcommit(tmp_path: Path) -> None:
    # 4 replicas, each with its own (soon stale) snapshot, race for 10 hosts x 8 vCPUs
    engine = make_db(tmp_path / "race.db", 10, cpu=8, mem=64 * GB)
    snapshots = [load_snapshot(engine) for _ in range(4)]
    req = ScheduleInput(vcpu_count=2, vmem_size=GB, count=3)
    placed, conflicts = _run_concurrently(engine, snapshots, req, rounds=6)
    assert conflicts > 0  # the replicas' snapshots were stale: the guard had work to do
    _assert_never_overcommitted(engine, sum(placed), 2, GB)
    assert sum(placed) == 40  # demand (72) exceeds supply: every vCPU ends up used, none twice


def test_concurrent_batches_on_one_shared_snapshot_never_overcommit(tmp_path: Path) -> None:
    engine = make_db(tmp_path / "shared.db", 6, cpu=6, mem=64 * GB)
    shared = load_snapshot(engine)
    req = ScheduleInput(vcpu_count=1, vmem_size=GB, count=4)
    placed, _conflicts = _run_concurrently(engine, [shared] * 3, req, rounds=4)
    _assert_never_overcommitted(engine, sum(placed), 1, GB)
    assert sum(placed) == 36
    assert shared.live_claims() == 0


def test_a_delta_that_fits_is_claimed_generation_guarded(tmp_path: Path) -> None:
    """change-config's claim: more CPU/memory for what host h0 already runs, through the same UPDATE."""
    engine = make_db(tmp_path / "c.db", 1, cpu=8)
    snap = load_snapshot(engine)
    with engine.connect() as conn:
        assert claim_delta(Delta("h0", 6, GB), snap, conn, HOSTS) is None
        conn.commit()
    assert db_usage(engine)["h0"][0:2] == (6, GB) and db_usage(engine)["h0"][4] == 1
    assert (snap.cpu_used[0], snap.generation[0]) == (6, 1)  # the snapshot holds the row as written
    with engine.connect() as conn:
        assert claim_delta(Delta("h0", 3, 0), snap, conn, HOSTS) == NO_ROOM  # 6 + 3 > 8
        assert claim_delta(Delta("h0", -4, -GB), snap, conn, HOSTS) is None  # a shrink always fits
        assert claim_delta(Delta("nope", 1, 0), snap, conn, HOSTS) == "host nope is not known to the scheduler"
        conn.commit()
    assert db_usage(engine)["h0"][0:2] == (2, 0) and db_usage(engine)["h0"][4] == 2


def test_a_delta_decided_on_a_stale_snapshot_is_decided_again(tmp_path: Path) -> None:
    """Another replica took CPU on the host after this snapshot read it: the claim conflicts, the row
    is re-read, and the delta is judged against what the host really has (never overcommitted)."""
    engine = make_db(tmp_path / "c.db", 1, cpu=8)
    stale = load_snapshot(engine)
    with engine.begin() as conn:
        conn.execute(update(HOSTS).values(cpu_used=5, generation=HOSTS.c.generation + 1))
    with engine.connect() as conn:
        assert claim_delta(Delta("h0", 4, 0), stale, conn, HOSTS) == NO_ROOM  # 5 + 4 > 8 once re-read
        assert claim_delta(Delta("h0", 3, 0), stale, conn, HOSTS) is None  # 5 + 3 fits
        conn.commit()
    assert db_usage(engine)["h0"][0] == 8 and db_usage(engine)["h0"][4] == 2



def _recorded(engine: Engine) -> tuple[list[tuple[str, str]], Any]:
    """(kind, host id) of each host row statement a claim runs, in order; and the listener to remove."""
    seen: list[tuple[str, str]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if "test_hosts" in statement and isinstance(params, tuple) and params:
            kind = "update" if statement.lstrip().upper().startswith("UPDATE") else "select"
            seen.extend([(kind, p) for p in params if isinstance(p, str) and p.startswith("h")][:1])

    event.listen(engine, "before_cursor_execute", record)
    return seen, record


def _at(host_id: str, instance: int = 0) -> Placement:
    return Placement(claim_id="order", instance=instance, host_id=host_id, host_name=host_id, generation=0,
                     vcpu=1, vmem=GB)


def test_a_batch_claims_its_hosts_in_id_order(tmp_path: Path) -> None:
    """A batch placed best-host-first was written in that order: against a transaction locking its
    hosts in id order (a deploy bumping its group's hosts' rules versions) it deadlocked on PostgreSQL."""
    engine = make_db(tmp_path / "c.db", 6)
    seen, record = _recorded(engine)
    try:
        with engine.connect() as conn:
            out = claim(conn, HOSTS, [_at("h4", 0), _at("h1", 1), _at("h5", 2), _at("h1", 3), _at("h0", 4)])
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(out.committed) == 5 and out.conflicts == []
    assert seen == [("update", "h0"), ("update", "h1"), ("update", "h4"), ("update", "h5")]


def test_a_later_claim_below_a_claimed_host_does_not_wait_for_it(tmp_path: Path) -> None:
    """A second claim in the same transaction (a conflict re-placed) on a host sorting below one already
    claimed takes that row without waiting (SELECT ... FOR UPDATE SKIP LOCKED first); above, it waits."""
    engine = make_db(tmp_path / "c.db", 6)
    seen, record = _recorded(engine)
    try:
        with engine.connect() as conn, conn.begin():
            claim(conn, HOSTS, [_at("h3")])
            claim(conn, HOSTS, [_at("h1"), _at("h5")])
        with engine.connect() as conn, conn.begin():  # a new transaction has claimed nothing yet
            claim(conn, HOSTS, [_at("h2")])
        with engine.connect() as conn, conn.begin():  # a conflict's UPDATE may have left its row locked
            stale = Placement(claim_id="order", instance=0, host_id="h4", host_name="h4", generation=7, vcpu=1,
                              vmem=GB)
            assert claim(conn, HOSTS, [stale]).conflicts == [stale]
            claim(conn, HOSTS, [_at("h0")])
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert seen == [("update", "h3"), ("select", "h1"), ("update", "h1"), ("update", "h5"), ("update", "h2"),
                    ("update", "h4"), ("select", "h0"), ("update", "h0")]
    assert {h: u[4] for h, u in db_usage(engine).items()} == {"h0": 1, "h1": 1, "h2": 1, "h3": 1, "h4": 0,
                                                              "h5": 1}
