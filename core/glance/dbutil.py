"""Short write transactions that are safe on SQLite next to other writers.

A deferred SQLite transaction that reads first and writes later fails at once with
SQLITE_BUSY_SNAPSHOT ("database is locked") if another connection committed in between (background
jobs do, all the time). Taking the write lock with the transaction's first statement makes it wait
its turn instead (busy timeout). PostgreSQL/MariaDB lock rows as they go and need nothing here.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.db.engine import Database


def begin_write(session: Session) -> None:
    """End the session's read snapshot and hold SQLite's write lock until the next commit."""
    if session.get_bind().dialect.name != "sqlite":
        return
    session.commit()  # callers flush nothing before this: it only ends the read snapshot
    session.execute(text("UPDATE images SET status = status WHERE 0 = 1"))  # no row, but the write lock


@contextmanager
def write_session(db: Database) -> Iterator[Session]:
    with db.session() as s:
        begin_write(s)
        yield s
