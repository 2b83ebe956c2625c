"""Alembic, driven from code: works from a source tree, a wheel or a PyInstaller bundle.

One migration tree for every dialect. Each service owns a branch (``branch_labels``) rooted on the
shared ``base`` revision, so services add revisions without touching each other's chain;
``upgrade`` goes to ``heads``. Upgrades run under a process lock and, on PostgreSQL/MariaDB, a
database advisory lock, because N replicas may start at once.
"""
from __future__ import annotations

import ast
import fcntl
import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PROCESS_LOCK = threading.Lock()  # Alembic is not thread-safe
_ADVISORY_KEY = 30300_0001


def alembic_config(connection: Connection | None = None):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _script():  # type: ignore[no-untyped-def]
    """The revision tree, read once per process: reading it executes every revision file, and
    `ocadm serve`'s preflight asked for it three times (a third of its start-up)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def code_heads() -> set[str]:
    return set(_script().get_heads())


@functools.cache
def declared_heads() -> frozenset[str] | None:
    """The heads, read from the revision files' text without importing Alembic (≈0.15–0.2 s of CPU,
    a tenth of `ocadm serve`'s start; parsing only each file's head: 47 -> 2 ms): a revision no
    other one names as its ``down_revision``, as Alembic counts heads (``depends_on`` does not end a
    head). None when a file does not state its revisions as plain literals: then only Alembic's own
    reading is trusted. A unit test holds this equal to ``code_heads()``."""
    downs: set[str] = set()
    revisions: set[str] = set()
    for f in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        text = f.read_text(encoding="utf-8")
        # the identifiers precede the functions: parse only that head (a tenth of the text), the
        # whole file if they are not both found there
        head = text.split("\ndef ", 1)[0]
        found = _revision_literals(head) if head != text else None
        if found is None or not {"revision", "down_revision"} <= found.keys():
            found = _revision_literals(text)
        if found is None:
            return None
        rev, down = found.get("revision"), found.get("down_revision")
        if not isinstance(rev, str):
            return None
        revisions.add(rev)
        if isinstance(down, str):
            downs.add(down)
        elif isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
            downs.update(down)
        elif down is not None:
            return None
    return frozenset(revisions - downs)


def _revision_literals(source: str) -> dict[str, object] | None:
    """The module-level ``revision``/``down_revision`` literals of a revision file's source; None if
    one is not a literal (or the source does not parse)."""
    found: dict[str, object] = {}
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    for node in body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            try:
                found[target.id] = ast.literal_eval(value)
            except (ValueError, TypeError):
                return None
    return found


def known_revisions() -> set[str]:
    return {r.revision for r in _script().walk_revisions()}


def db_revisions(conn: Connection) -> set[str]:
    if not inspect(conn).has_table("alembic_version"):
        return set()
    return {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}


@dataclass(frozen=True)
class SchemaState:
    state: str  # "empty" | "behind" | "current" | "ahead"
    db: frozenset[str]
    code: frozenset[str]

    def problem(self) -> str | None:
        """One line telling the operator what is wrong and which command fixes it, or None."""
        if self.state == "empty":
            return "the database has no schema: run `ocadm upgrade` (or `ocadm init`)"
        if self.state == "behind":
            return "the database schema is older than this code: run `ocadm upgrade`"
        if self.state == "ahead":
            unknown = ", ".join(sorted(self.db - known_revisions()))
            return (f"the database schema ({unknown}) is newer than this code: "
                    "upgrade cloudpods-one or restore a backup made with this version")
        return None


def applied_revisions(db: set[str]) -> set[str]:
    """Every revision a database at ``db`` has: the listed ones and their ancestors, dependencies
    included (Alembic drops a ``depends_on`` target from ``alembic_version`` once a dependant is in)."""
    return {r.revision for r in _script().iterate_revisions(tuple(db), "base")}


def schema_state(engine: Engine) -> SchemaState:
    with engine.connect() as conn:
        db = db_revisions(conn)
    if db and db == declared_heads():  # the usual start: no Alembic import, nothing to walk
        return SchemaState("current", frozenset(db), frozenset(db))
    code = code_heads()
    if db and db == code:
        return SchemaState("current", frozenset(db), frozenset(code))
    if not db:
        st = "empty"
    elif db - known_revisions():
        st = "ahead"
    elif code <= applied_revisions(db):
        st = "current"
    else:
        st = "behind"
    return SchemaState(st, frozenset(db), frozenset(code))


@contextmanager
def _migration_lock(engine: Engine, lock_file: Path | None) -> Iterator[Connection]:
    with _PROCESS_LOCK:
        fh = None
        if lock_file is not None:
            lock_file.parent.mkdir(parents=True, exist_ok=True)
            fh = open(lock_file, "a+")  # noqa: SIM115  (held across the yield)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            with engine.connect() as conn:
                name = engine.dialect.name
                if name == "postgresql":
                    conn.execute(text("SET lock_timeout = '60s'"))
                    conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _ADVISORY_KEY})
                    conn.commit()
                elif name in ("mysql", "mariadb"):
                    conn.execute(text("SELECT GET_LOCK('cloudpods_migrate', 120)"))
                try:
                    yield conn
                finally:
                    if name == "postgresql":
                        conn.rollback()
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_KEY})
                        conn.commit()
                    elif name in ("mysql", "mariadb"):
                        conn.execute(text("SELECT RELEASE_LOCK('cloudpods_migrate')"))
        finally:
            if fh is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()


def upgrade(engine: Engine, target: str = "heads", lock_file: Path | None = None) -> SchemaState:
    from alembic import command

    with _migration_lock(engine, lock_file) as conn:
        command.upgrade(alembic_config(conn), target)
        conn.commit()
    return schema_state(engine)


def downgrade(engine: Engine, target: str, lock_file: Path | None = None) -> None:
    from alembic import command

    with _migration_lock(engine, lock_file) as conn:
        command.downgrade(alembic_config(conn), target)
        conn.commit()
