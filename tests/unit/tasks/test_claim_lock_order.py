"""On PostgreSQL / MariaDB (CLOUDPODS_TEST_DB=pg|mysql): a claim never waits for a host row out of id order.

A later claim in one transaction (a conflict re-placed) on a host sorting below one already claimed
takes it with SKIP LOCKED: held by another transaction, it is a conflict at once, not a wait that
closes a cycle with a transaction locking hosts in id order (secgroups.touch_hosts)."""
from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, insert, select, text, update

from core.db.engine import Database
from core.scheduler.claims import ClaimOutcome, claim
from core.scheduler.placement import Placement
from tests.support.controller import test_db_kind as db_kind

md = MetaData()
HOSTS = Table(
    "claim_order_hosts", md,
    Column("id", String(64), primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("cpu_used", Float, nullable=False),
    Column("mem_used", Float, nullable=False),
)


def _at(host_id: str) -> Placement:
    return Placement(claim_id="order", instance=0, host_id=host_id, host_name=host_id, generation=0, vcpu=1, vmem=1)


def test_a_host_below_a_claimed_one_is_a_conflict_when_locked_elsewhere(db: Database) -> None:
    if db_kind() == "sqlite":
        pytest.skip("row locks: CLOUDPODS_TEST_DB=pg|mysql")
    md.create_all(db.engine)
    with db.engine.begin() as c:
        c.execute(insert(HOSTS), [{"id": f"h{i}", "generation": 0, "cpu_used": 0, "mem_used": 0} for i in range(6)])
    with db.engine.connect() as other, other.begin():
        other.execute(select(HOSTS.c.id).where(HOSTS.c.id == "h1").with_for_update())  # e.g. a rules bump
        with db.engine.connect() as conn, conn.begin():
            # a wait (the bug) ends in an error after 20 s instead of hanging the test
            conn.execute(text("SET LOCAL lock_timeout = '20s'" if db.engine.dialect.name == "postgresql"
                              else "SET SESSION innodb_lock_wait_timeout = 20"))
            assert [p.host_id for p in claim(conn, HOSTS, [_at("h3")]).committed] == ["h3"]
            out = claim(conn, HOSTS, [_at("h1"), _at("h5")])  # h1 sorts below h3, held: no wait
            assert [p.host_id for p in out.committed] == ["h5"]
            assert [p.host_id for p in out.conflicts] == ["h1"]


def test_on_postgresql_a_conflict_leaves_its_host_row_unlocked(db: Database) -> None:
    """A conflicting UPDATE that waited for its row (another writer moved it meanwhile) leaves the row
    locked; in its savepoint, rolled back, it does not."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL: CLOUDPODS_TEST_DB=pg")
    md.create_all(db.engine)
    with db.engine.begin() as c:
        c.execute(insert(HOSTS), [{"id": f"h{i}", "generation": 0, "cpu_used": 0, "mem_used": 0} for i in range(3)])
    with db.engine.connect() as conn, conn.begin():
        conn.execute(text("SET LOCAL lock_timeout = '60s'"))
        with db.engine.connect() as writer:
            writer.begin()
            writer.execute(update(HOSTS).where(HOSTS.c.id == "h2").values(generation=HOSTS.c.generation + 1))
            out: list[ClaimOutcome] = []
            t = threading.Thread(target=lambda: out.append(claim(conn, HOSTS, [_at("h2")])))
            t.start()
            deadline = time.monotonic() + 60  # the claim waits for the writer's row lock
            while time.monotonic() < deadline and not _waiting_for_a_lock(db):
                time.sleep(0.05)
            writer.commit()
            t.join(60)
        assert out and [p.host_id for p in out[0].conflicts] == ["h2"]
        with db.engine.connect() as other, other.begin():  # NOWAIT: an error if the claim still held h2
            assert other.execute(select(HOSTS.c.id).where(HOSTS.c.id == "h2").with_for_update(nowait=True)).all()
        assert [p.host_id for p in claim(conn, HOSTS, [_at("h1")]).committed] == ["h1"]


def _waiting_for_a_lock(db: Database) -> bool:
    with db.engine.connect() as c:
        return bool(c.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                  "AND wait_event_type = 'Lock'")))
