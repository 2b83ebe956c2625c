"""Engines and sessions for SQLite (default), PostgreSQL (psycopg 3) and MariaDB (PyMySQL)."""
from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import CursorResult, Engine, Executable, create_engine, event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

_DRIVER_HINT = {
    "postgresql": ("postgresql+psycopg", "pip install 'cloudpods-one[postgres]'"),
    "mysql": ("mysql+pymysql", "pip install 'cloudpods-one[mysql]'"),
    "mariadb": ("mysql+pymysql", "pip install 'cloudpods-one[mysql]'"),
}


@contextmanager
def committed(s: Session) -> Iterator[Session]:
    """``s`` for the block: committed when it ends, rolled back when it raises (anything, a
    cancellation too), closed either way. The one way a session's life is ended."""
    try:
        yield s
        if s.in_transaction():  # nothing begun, nothing to commit (a commit would begin one first)
            s.commit()
    except BaseException:
        s.rollback()
        raise
    finally:
        s.close()


def plain_rows(session: Session, stmt: Executable, params: Mapping[str, Any] | None = None) -> CursorResult[Any]:
    """Run ``stmt`` (a select of columns, not of mapped objects) on the session's connection: its
    rows without the ORM's per-statement machinery, about half the cost of ``session.execute`` for
    a statement built once (read paths run several per request). Pending changes are flushed first,
    as the ORM's autoflush would do (not inside ``no_autoflush``)."""
    if session.autoflush:
        session.flush()
    return session.connection().execute(stmt, params)


def normalise_url(url: str) -> str:
    """Pick the drivers we ship for bare dialect names (postgresql://, mysql://, mariadb://)."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in _DRIVER_HINT:
        return f"{_DRIVER_HINT[scheme][0]}://{rest}"
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 10})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; emit it ourselves so SELECT ... then
        # UPDATE in one transaction is serialised properly (one writer at a time).
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn: Any, _r: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    if url.startswith("mysql"):
        kwargs.setdefault("pool_recycle", 3600)
        # PostgreSQL's default. MariaDB's REPEATABLE READ would show a transaction its first snapshot
        # again, so a claim that lost a race re-reads the stale generation and loses again.
        kwargs.setdefault("isolation_level", "READ COMMITTED")
    try:
        return create_engine(url, **kwargs)
    except ModuleNotFoundError as e:
        hint = next((h for s, (_d, h) in _DRIVER_HINT.items() if url.startswith(s)), "")
        raise RuntimeError(f"database driver missing ({e.name}): {hint}") from e


class Database:
    """An engine plus a session factory; the app keeps one per process."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with committed(self.sessionmaker()) as s:
            yield s

    def dispose(self) -> None:
        self.engine.dispose()


# ---- writers on SQLite -----------------------------------------------------------------------
# SQLite has one writer at a time. Left to itself, a waiting writer polls in SQLite's busy handler
# with sleeps growing to 100 ms, which under load turns a 2 ms create into hundreds of ms. In one
# process (the embedded controller) writers queue on a gate per engine instead and get the database
# the moment the previous writer commits. API requests go first: background writers (task stages,
# periodic jobs) yield to waiting requests for up to BACKGROUND_YIELD_S, so a burst of creates is
# accepted at the rate one transaction allows while the tasks catch up after it.
# Replicas use PostgreSQL/MariaDB, where row locks do this job.
BACKGROUND_YIELD_S = 0.05


class _WriterGate:
    """Release wakes one thread that can proceed — a foreground waiter if any (these include
    background ones past their yield), else one background waiter — not every waiting thread. The
    gate is handed to the woken foreground waiter: a thread arriving meanwhile does not take it
    first (the releasing thread would otherwise re-take it at once and the woken one wait again)."""

    def __init__(self) -> None:
        lock = threading.Lock()
        self._fg = threading.Condition(lock)  # API requests, and background writers past their yield
        self._bg = threading.Condition(lock)  # background writers within their yield
        self._owner: int | None = None
        self._depth = 0
        self._fg_waiting = 0
        self._bg_waiting = 0
        self._handoff = False  # a foreground waiter was woken to take the free gate

    def _wake_one(self) -> None:
        if self._fg_waiting:
            self._handoff = True
            self._fg.notify()
        elif self._bg_waiting:
            self._bg.notify()

    def _free(self) -> bool:
        return self._owner is None and not self._handoff

    def acquire(self, background: bool) -> None:
        me = threading.get_ident()
        with self._fg:
            if self._owner == me:  # re-entry from a second session of the same thread
                self._depth += 1
                return
            if not self._free() or (background and self._fg_waiting):
                try:
                    if background:
                        self._wait_background()
                    else:
                        self._wait()
                except BaseException:
                    if self._owner is None:  # this thread may have had the wake-up: pass it on
                        self._handoff = False
                        self._wake_one()
                    raise
            self._owner, self._depth, self._handoff = me, 1, False

    def _wait(self) -> None:
        self._fg_waiting += 1
        try:
            self._fg.wait()
            while self._owner is not None:
                self._fg.wait()
        finally:
            self._fg_waiting -= 1

    def _wait_background(self) -> None:
        deadline = time.monotonic() + BACKGROUND_YIELD_S
        self._bg_waiting += 1
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if self._free() and not self._fg_waiting:
                    return
                self._bg.wait(left)  # a foreground waiter may come meanwhile: the yield ends at the deadline
        finally:
            self._bg_waiting -= 1
        if not self._free():
            self._wait()  # past its yield: waits among the foreground ones

    def release(self) -> None:
        with self._fg:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._wake_one()


_GATES: weakref.WeakKeyDictionary[Engine, _WriterGate] = weakref.WeakKeyDictionary()
_GATES_GUARD = threading.Lock()


def _gate(engine: Engine) -> _WriterGate:
    with _GATES_GUARD:
        gate = _GATES.get(engine)
        if gate is None:
            gate = _GATES[engine] = _WriterGate()
        return gate


def begin_write(session: Session, *, background: bool = False) -> None:
    """Make the session's transaction a writer from its first statement (no-op off SQLite).

    A deferred SQLite transaction that read first and writes later fails at once with
    SQLITE_BUSY_SNAPSHOT when another writer committed in between; taking the write lock up front
    makes it wait its turn instead. Call it before the first read of a mutating unit of work. A
    read-only transaction already open (e.g. token validation) is ended first: nothing is lost.
    The lock is held until the transaction ends (commit, rollback or close). ``background=True``
    for work nobody is waiting on (task stages, periodic jobs): it lets API requests go first.
    """
    bind = session.get_bind()
    if bind.dialect.name != "sqlite" or session.info.get("_sqlite_writer"):
        return
    if session.in_transaction():
        if session.new or session.dirty or session.deleted:
            raise RuntimeError("begin_write must come before the first change of a transaction")
        session.commit()
    engine = bind.engine if hasattr(bind, "engine") else bind
    gate = _gate(engine)  # type: ignore[arg-type]
    gate.acquire(background)
    session.info["_sqlite_writer"] = gate
    try:
        # no row, but the write lock (on the session's connection: the ORM's statement path cost more than this)
        session.connection().exec_driver_sql("UPDATE db_leases SET name = name WHERE 0 = 1")
    except BaseException:
        session.rollback()
        raise


@event.listens_for(Session, "after_transaction_end")
def _release_writer(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        gate = session.info.pop("_sqlite_writer", None)
        if gate is not None:
            gate.release()


def is_transient(exc: BaseException) -> bool:
    """A database error that a retry of the same transaction resolves: a deadlock the server broke,
    a serialization failure, a lock wait that timed out (PostgreSQL, MariaDB) — never bad data."""
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if type(orig).__name__ in ("DeadlockDetected", "SerializationFailure", "LockNotAvailable"):
        return True
    code = orig.args[0] if orig is not None and orig.args else None
    return code in (1213, 1205)  # MariaDB: deadlock found; lock wait timeout exceeded
