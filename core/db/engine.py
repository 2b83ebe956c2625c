"""Engines and sessions for SQLite (default), PostgreSQL (psycopg 3) and MariaDB (PyMySQL)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

_DRIVER_HINT = {
    "postgresql": ("postgresql+psycopg", "pip install 'cloudpods-one[postgres]'"),
    "mysql": ("mysql+pymysql", "pip install 'cloudpods-one[mysql]'"),
    "mariadb": ("mysql+pymysql", "pip install 'cloudpods-one[mysql]'"),
}


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
        s = self.sessionmaker()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def dispose(self) -> None:
        self.engine.dispose()
