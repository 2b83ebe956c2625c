"""Short write transactions that are safe on SQLite next to other writers.

A deferred SQLite transaction that reads first and writes later fails at once with
SQLITE_BUSY_SNAPSHOT ("database is locked") if another connection committed in between (background
jobs do, all the time). Taking the write lock with the transaction's first statement makes it wait
its turn instead (busy timeout). PostgreSQL/MariaDB lock rows as they go and need nothing here.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from core.db.engine import Database, begin_write

__all__ = ["begin_write", "write_session"]


@contextmanager
def write_session(db: Database) -> Iterator[Session]:
    with db.session() as s:
        begin_write(s)
        yield s
