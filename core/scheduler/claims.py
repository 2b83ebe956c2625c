"""Write placements to the database, guarded by each host row's ``generation`` counter.

    UPDATE hosts SET cpu_used = cpu_used + :cpu, mem_used = mem_used + :mem,
                     generation = generation + 1
     WHERE id = :id AND generation = :seen

A placement was decided against the host as it was at generation ``seen``; if another writer
(a concurrent batch, another controller replica) changed the row since, the UPDATE matches no
row and only that host's placements come back as conflicts to re-place against a fresh row.
All hosts of one call are written in ONE transaction, in host id order: a transaction that bumps
hosts' rules versions locks its hosts in id order too (core/region/secgroups.touch_hosts), and a claim
out of that order deadlocked against it on PostgreSQL (bench/scale.py, 3 replicas). A conflicting
UPDATE waited for its row and leaves it locked: on PostgreSQL each UPDATE runs in a savepoint, rolled
back on a conflict, which unlocks the row (a single-server create that conflicted on one host and was
re-placed on a lower one waited for it holding the first). A later round of the same transaction may
still pick a host sorting below one it claimed (or, elsewhere, tried to): that row is taken without
waiting (``FOR UPDATE SKIP LOCKED``) and one another transaction holds is a conflict like a moved
generation, so no claim waits for a host row out of id order. The table is passed in (any table with
``id``, ``generation``, ``cpu_used``, ``mem_used``), so the region points this at its real ``hosts``
table and tests at a test table.

``place_and_claim`` is the loop: place, claim, and re-place only what conflicted. ``claim_delta`` is
the same claim for a change of what a host already runs (change-config): no placement to decide, the
host is given, only whether the delta fits there, written by the same generation-guarded UPDATE.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, bindparam, select, update
from sqlalchemy.orm import Session

from core.scheduler.placement import Placement
from core.scheduler.request import ScheduleInput
from core.scheduler.result import PlacementResult
from core.scheduler.snapshot import Snapshot

if TYPE_CHECKING:  # the engine (and numpy under it) loads at the first placement, not with the region
    from core.scheduler.engine import SchedulerConfig

Conn = Connection | Session


@dataclass(slots=True)
class ClaimOutcome:
    committed: list[Placement] = field(default_factory=list)
    conflicts: list[Placement] = field(default_factory=list)
    generations: dict[str, int] = field(default_factory=dict)  # host id -> generation after commit


def claim(conn: Conn, table: Table, placements: Sequence[Placement]) -> ClaimOutcome:
    """Write ``placements`` in one transaction; conflicting hosts' placements are returned.

    Joins the caller's transaction when one is open, else opens and commits its own.
    """
    by_host: dict[tuple[str, int], list[Placement]] = {}
    for p in placements:
        by_host.setdefault((p.host_id, p.generation), []).append(p)
    outcome = ClaimOutcome()
    if not by_host:
        return outcome
    stmt = (
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.generation == bindparam("b_seen"))
        .values(
            cpu_used=table.c.cpu_used + bindparam("b_cpu"),
            mem_used=table.c.mem_used + bindparam("b_mem"),
            generation=table.c.generation + 1,
        )
    )
    no_wait = (
        select(table.c.id)
        .where(table.c.id == bindparam("b_id"), table.c.generation == bindparam("b_seen"))
        .with_for_update(skip_locked=True)
    )
    tx: Any = nullcontext() if conn.in_transaction() else conn.begin()
    with tx:
        top = _highest_claimed(conn)
        raw = conn.connection() if isinstance(conn, Session) else conn
        pg = raw.dialect.name == "postgresql"
        for (host_id, seen), ps in sorted(by_host.items()):
            params = {"b_id": host_id, "b_seen": seen,
                      "b_cpu": sum(p.vcpu for p in ps), "b_mem": sum(p.vmem for p in ps)}
            below = host_id < top[0]  # out of order in this transaction: never wait for it
            if below and conn.execute(no_wait, params).first() is None:
                outcome.conflicts.extend(ps)
                continue
            if below or not pg:
                done = conn.execute(stmt, params).rowcount == 1  # type: ignore[attr-defined]
                top[0] = max(top[0], host_id)  # a conflict too: the UPDATE waited for the row, may hold it
            else:  # in a savepoint: a conflict rolled back to it holds nothing (InnoDB would keep the lock)
                sp = raw.begin_nested()
                done = raw.execute(stmt, params).rowcount == 1
                if done:
                    sp.commit()
                    top[0] = max(top[0], host_id)
                else:
                    sp.rollback()
            if done:
                outcome.committed.extend(ps)
                outcome.generations[host_id] = seen + 1
            else:
                outcome.conflicts.extend(ps)
    return outcome


def _highest_claimed(conn: Conn) -> list[str]:
    """The highest host id claimed (or tried) so far in ``conn``'s current transaction (a one-item list the
    caller updates), "" when none: kept in ``conn.info`` for the transaction it was taken in."""
    tx = conn.get_transaction()
    mark = conn.info.get("claims_highest_host")
    if mark is None or mark[0] is not tx:
        mark = (tx, [""])
        conn.info["claims_highest_host"] = mark
    top: list[str] = mark[1]
    return top


def read_usage(conn: Conn, table: Table, host_ids: Sequence[str]) -> dict[str, tuple[float, float, int]]:
    """host id -> (cpu_used, mem_used, generation) as the DB has it now."""
    rows = conn.execute(
        select(table.c.id, table.c.cpu_used, table.c.mem_used, table.c.generation)
        .where(table.c.id.in_(list(host_ids)))
    )
    return {r.id: (float(r.cpu_used), float(r.mem_used), int(r.generation)) for r in rows}


def place_and_claim(
    req: ScheduleInput,
    snap: Snapshot,
    conn: Conn,
    table: Table,
    config: SchedulerConfig | None = None,
    *,
    max_rounds: int = 5,
) -> PlacementResult:
    """Place the batch, claim it, and re-place only conflicting instances (up to ``max_rounds``).

    Each round's claim commits on its own, so what was placed stays placed even if a later
    round finds no room; the result explains the shortfall. ``config`` None is DEFAULT_CONFIG.
    """
    from core.scheduler.engine import DEFAULT_CONFIG, place

    config = config or DEFAULT_CONFIG
    caller_tx = conn.in_transaction()
    result = place(req, snap, config)
    committed: list[Placement] = []
    pending = result.placements
    for _ in range(max_rounds):
        outcome = claim(conn, table, pending)
        snap.settle(outcome.committed, outcome.generations)
        committed.extend(outcome.committed)
        if not outcome.conflicts:
            break
        result.conflicts += len(outcome.conflicts)
        for p in outcome.conflicts:
            snap.release(p)
        fresh = read_usage(conn, table, sorted({p.host_id for p in outcome.conflicts}))
        if not caller_tx:
            conn.commit()  # end the read so the next round's claim opens its own transaction
        for host_id, (cpu, mem, gen) in fresh.items():
            snap.refresh_usage(host_id, cpu, mem, gen)
        retry = req.model_copy(update={"count": len(outcome.conflicts)})
        again = place(retry, snap, config)
        result.rejected, result.exhausted = again.rejected, again.exhausted
        result.stop_reason = again.stop_reason
        pending = [_renumber(p, len(committed) + i) for i, p in enumerate(again.placements)]
        if not pending:
            break
    else:
        for p in pending:
            snap.release(p)
        result.stop_reason = f"claims kept conflicting after {max_rounds} rounds"
    result.placements = committed
    return result


def _renumber(p: Placement, instance: int) -> Placement:
    return replace(p, instance=instance)


NO_ROOM = "the host lacks free CPU or memory for the new configuration"


@dataclass(frozen=True, slots=True)
class Delta:
    """More (or, negative, less) CPU and memory for something already on ``host_id``."""

    host_id: str
    vcpu: int
    vmem: int


def claim_delta(delta: Delta, snap: Snapshot, conn: Conn, table: Table, *, max_rounds: int = 5) -> str | None:
    """Claim ``delta`` on its host if it fits there (a shrink always does); None when claimed, else
    why not. A conflict (the host row moved since the snapshot read it) re-reads the row and
    decides again, as ``place_and_claim`` does; the snapshot keeps the row as the DB has it after.
    Joins the caller's transaction."""
    for _ in range(max_rounds):
        i = snap.host_index.get(delta.host_id)
        if i is None:
            return f"host {delta.host_id} is not known to the scheduler"
        fits_cpu = delta.vcpu <= 0 or snap.cpu_used[i] + delta.vcpu <= snap.cpu_cap[i]
        fits_mem = delta.vmem <= 0 or snap.mem_used[i] + delta.vmem <= snap.mem_cap[i]
        if not (fits_cpu and fits_mem):
            return NO_ROOM
        p = Placement(claim_id=f"delta-{delta.host_id}", instance=0, host_id=delta.host_id,
                      host_name=snap.host_names[i], generation=int(snap.generation[i]), vcpu=delta.vcpu,
                      vmem=delta.vmem)
        outcome = claim(conn, table, [p])
        for host_id, (cpu, mem, gen) in read_usage(conn, table, [delta.host_id]).items():
            snap.refresh_usage(host_id, cpu, mem, gen)
        if outcome.committed:
            return None
    return f"claims kept conflicting after {max_rounds} rounds"
