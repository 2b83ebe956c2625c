"""Online, consistent backups of a controller, restorable on any dialect.

    summary = create_backup(settings, Path("cp.tar.gz"), with_images=False)
    summary = restore_backup(Path("cp.tar.gz"), Path("/new/data"), db_url="", port=30300)

A backup is one gzip'd tar (mode 0600: it holds keys and password hashes):

    manifest.json              format, version, dialect, Alembic revisions, row count per table
    config.toml, rc_admin      the controller's settings and admin credentials
    keys/*, credential-keys/*  token signing keys and the credential-encryption keys
    db/<table>.jsonl           every row of every table, one JSON object a line
    images/*                   image files (only with ``with_images``; their metadata is in db/)

Rows are read in ONE read-only snapshot transaction (PostgreSQL REPEATABLE READ, MariaDB
``WITH CONSISTENT SNAPSHOT``; SQLite is first copied with its online backup API), so a backup taken
while replicas keep working is consistent. The rows are dialect-neutral JSON through SQLAlchemy, so
a SQLite backup restores into PostgreSQL or MariaDB and back (that is also the migration path off
SQLite). Restore builds the schema at the backup's Alembic revisions, loads the rows, then upgrades
to this code's heads, so an older backup restores into newer code.
"""
from __future__ import annotations

import base64
import io
import json
import os
import re
import sqlite3
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Integer, LargeBinary, MetaData, Table, inspect, text
from sqlalchemy.types import DateTime, TypeDecorator

from core.errors import InputParameterError

FORMAT = "cloudpods-one-backup/1"
BATCH = 500
KEY_DIRS = ("keys", "credential-keys")


@dataclass
class Summary:
    path: Path
    tables: int = 0
    rows: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    revisions: list[str] = field(default_factory=list)
    dialect: str = ""
    warnings: list[str] = field(default_factory=list)


def _metadata() -> MetaData:
    import core.db.models  # noqa: F401  (every table registered)
    from core.db.base import Base

    return Base.metadata


# ---- values <-> JSON -------------------------------------------------------------------------------
def _enc(v: Any) -> Any:
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).isoformat()
    if isinstance(v, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, Decimal):
        return str(v)
    return v


def _is(col_type: Any, kind: type) -> bool:
    t = col_type.impl if isinstance(col_type, TypeDecorator) else col_type
    return isinstance(t, kind)


def _decoder(table: Table) -> Any:
    conv: dict[str, Any] = {}
    for c in table.columns:
        if _is(c.type, DateTime):
            conv[c.name] = lambda v: datetime.fromisoformat(v) if isinstance(v, str) else v
        elif _is(c.type, LargeBinary):
            conv[c.name] = lambda v: base64.b64decode(v) if isinstance(v, str) else v

    def decode(row: dict[str, Any]) -> dict[str, Any]:
        unknown = set(row) - set(table.columns.keys())
        if unknown:
            raise InputParameterError(f"backup: table {table.name} has columns this version lacks: "
                                      f"{', '.join(sorted(unknown))}")
        return {k: (conv[k](v) if k in conv and v is not None else v) for k, v in row.items()}

    return decode


# ---- backup ---------------------------------------------------------------------------------------
def _snapshot_connection(engine: Any) -> Connection:
    """A connection inside a read-only transaction that sees one instant of the database."""
    name = engine.dialect.name
    if name == "postgresql":
        conn = engine.connect().execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        conn.execute(text("SELECT 1"))
        return conn  # type: ignore[no-any-return]
    if name in ("mysql", "mariadb"):
        conn = engine.connect().execution_options(isolation_level="REPEATABLE READ")
        conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        return conn  # type: ignore[no-any-return]
    conn = engine.connect()
    conn.execute(text("SELECT 1"))
    return conn  # type: ignore[no-any-return]


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _dump_tables(conn: Connection, tar: tarfile.TarFile, tmp: Path) -> dict[str, int]:
    meta = _metadata()
    present = set(inspect(conn).get_table_names())
    counts: dict[str, int] = {}
    for table in meta.sorted_tables:
        if table.name not in present:
            continue
        path = tmp / f"{table.name}.jsonl"
        n = 0
        with open(path, "w", encoding="utf-8") as f:
            cols = list(table.columns.keys())
            result = conn.execute(table.select().order_by(*table.primary_key.columns)).yield_per(BATCH)
            for row in result:
                f.write(json.dumps({k: _enc(v) for k, v in zip(cols, row, strict=True)},
                                   separators=(",", ":"), ensure_ascii=False))
                f.write("\n")
                n += 1
        tar.add(path, arcname=f"db/{table.name}.jsonl")
        path.unlink()
        counts[table.name] = n
    return counts


def create_backup(settings: Any, out: Path, *, with_images: bool = False) -> Summary:
    """Write a backup of the controller whose settings are given to ``out`` (refuses to overwrite)."""
    from core.db.engine import Database
    from core.db.migrate import db_revisions
    from core.version import VERSION

    t0 = time.monotonic()
    out = out.expanduser().resolve()
    if out.exists():
        raise InputParameterError(f"{out} exists: choose another file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    data_dir = Path(settings.data_dir)
    summary = Summary(path=out)
    with tempfile.TemporaryDirectory(prefix="cpone-backup-") as td:
        tmp = Path(td)
        url = settings.database_url
        if url.startswith("sqlite"):
            url = _sqlite_copy(data_dir / "cloudpods.db", tmp / "snapshot.db")
        db = Database(url)
        fd = os.open(str(out) + ".part", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                conn = _snapshot_connection(db.engine)
                try:
                    revisions = sorted(db_revisions(conn))
                    if not revisions:
                        raise InputParameterError("the database has no schema: nothing to back up")
                    counts = _dump_tables(conn, tar, tmp)
                finally:
                    conn.rollback()
                    conn.close()
                summary.dialect = db.dialect
                files = _add_files(tar, data_dir, with_images)
                manifest = {"format": FORMAT, "version": VERSION, "created_at": datetime.now(UTC).isoformat(),
                            "dialect": summary.dialect, "revisions": revisions, "tables": counts,
                            "public_url": settings.public_url, "with_images": with_images, "files": files}
                _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2).encode())
            os.replace(str(out) + ".part", out)
        except BaseException:
            Path(str(out) + ".part").unlink(missing_ok=True)
            raise
        finally:
            db.dispose()
    summary.tables, summary.rows = len(counts), sum(counts.values())
    summary.files, summary.revisions = len(files), revisions
    summary.bytes, summary.seconds = out.stat().st_size, time.monotonic() - t0
    return summary


def _sqlite_copy(src: Path, dst: Path) -> str:
    """A consistent copy of a live SQLite database (the online backup API: writers keep going)."""
    if not src.exists():
        raise InputParameterError(f"no database at {src}")
    s = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    d = sqlite3.connect(dst)
    try:
        s.backup(d, pages=1024)
    finally:
        d.close()
        s.close()
    return f"sqlite:///{dst}"


def _add_files(tar: tarfile.TarFile, data_dir: Path, with_images: bool) -> list[str]:
    names = []
    for name in ("config.toml", "rc_admin"):
        p = data_dir / name
        if p.is_file():
            tar.add(p, arcname=name)
            names.append(name)
    dirs = list(KEY_DIRS) + (["images"] if with_images else [])
    for d in dirs:
        root = data_dir / d
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*")):
            if p.is_file() and not p.name.endswith((".tmp", ".part")):
                arc = str(p.relative_to(data_dir))
                tar.add(p, arcname=arc)
                names.append(arc)
    return names


# ---- restore --------------------------------------------------------------------------------------
def read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    try:
        f = tar.extractfile("manifest.json")
    except KeyError:
        raise InputParameterError("not a cloudpods-one backup (no manifest.json)") from None
    assert f is not None
    m = json.loads(f.read())
    if m.get("format") != FORMAT:
        raise InputParameterError(f"unknown backup format {m.get('format')!r} (this version reads {FORMAT})")
    return dict(m)


def _safe_member(name: str) -> bool:
    return not (name.startswith("/") or ".." in Path(name).parts)


def _rewrite_config(text_: str, values: dict[str, Any]) -> str:
    """Replace top-level ``key = value`` lines (before the first [table]); add missing ones."""
    from core.config import toml_value

    head, sep, tail = text_.partition("\n[")
    for k, v in values.items():
        line = f"{k} = {toml_value(v)}"
        pat = re.compile(rf"^{re.escape(k)}\s*=.*$", re.M)
        head = pat.sub(line.replace("\\", "\\\\"), head) if pat.search(head) else head.rstrip("\n") + "\n" + line
    return head.rstrip("\n") + "\n" + (sep + tail if sep else "")


def restore_backup(path: Path, data_dir: Path, *, db_url: str = "", port: int | None = None,
                   listen_host: str | None = None, public_host: str | None = None, force: bool = False) -> Summary:
    """Make ``data_dir`` a controller restored from the backup at ``path`` (its database at ``db_url``,
    default SQLite in the data dir). The target database must be empty unless ``force``."""
    from core.config import Settings, write_private
    from core.db.engine import Database, normalise_url
    from core.db.migrate import known_revisions, upgrade

    t0 = time.monotonic()
    path = path.expanduser().resolve()
    if not path.is_file():
        raise InputParameterError(f"no backup at {path}")
    d = data_dir.expanduser().resolve()
    if (d / "config.toml").exists() and not force:
        raise InputParameterError(f"{d} is already initialised: restore into a new data dir (or use --force)")
    try:
        tar = tarfile.open(path, "r:gz")  # noqa: SIM115  (closed by the `with tar` below)
    except (tarfile.TarError, OSError) as e:
        raise InputParameterError(f"{path} is not a readable backup: {e}") from None
    summary = Summary(path=path)
    with tar:
        m = read_manifest(tar)
        unknown = set(m["revisions"]) - known_revisions()
        if unknown:
            raise InputParameterError(f"the backup is from a newer version (schema {', '.join(sorted(unknown))}); "
                                      "upgrade cloudpods-one first")
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)
        # files: keys, credential keys, images; config and rc_admin adjusted below
        for member in tar.getmembers():
            if not member.isfile() or not _safe_member(member.name):
                continue
            top = member.name.split("/", 1)[0]
            if top in (*KEY_DIRS, "images"):
                src = tar.extractfile(member)
                assert src is not None
                dst = d / member.name
                dst.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                write_private(dst, src.read())
                summary.files += 1
        old = _member_text(tar, "config.toml") or ""
        changes: dict[str, Any] = {"db_url": normalise_url(db_url) if db_url else ""}
        if port is not None:
            changes["port"] = port
        if listen_host:
            changes["listen_host"] = listen_host
        if public_host:
            changes["public_host"] = public_host
        write_private(d / "config.toml", _rewrite_config(old, changes))
        settings = Settings.load(d)
        new_public, old_public = settings.public_url, str(m.get("public_url") or "")
        rc = _member_text(tar, "rc_admin")
        if rc is not None:
            if old_public:
                rc = rc.replace(old_public, new_public)
            write_private(d / "rc_admin", rc)
        db = Database(settings.database_url)
        try:
            _check_empty(db, force)
            for rev in m["revisions"]:  # the schema the rows were written with
                upgrade(db.engine, rev, lock_file=d / "migrate.lock")
            summary.rows, summary.tables = _load_rows(db, tar, m)
            upgrade(db.engine, "heads", lock_file=d / "migrate.lock")  # then this code's schema
            if old_public and old_public != new_public:
                _repoint_catalog(db, old_public, new_public)
            summary.dialect = db.dialect
            if not m.get("with_images"):
                summary.warnings += _images_without_data(db, d)
        finally:
            db.dispose()
    summary.revisions = list(m["revisions"])
    summary.bytes, summary.seconds = path.stat().st_size, time.monotonic() - t0
    return summary


def _images_without_data(db: Any, data_dir: Path) -> list[str]:
    """A backup made without --with-images restores active images whose bytes are elsewhere: say so
    now (downloads and boots of them answer 409 naming the image until they are uploaded again)."""
    from sqlalchemy import select

    from core.glance.models import ACTIVE, Image

    with db.session() as s:
        rows = s.execute(select(Image.name, Image.location).where(Image.status == ACTIVE)).all()
    missing = [name for name, loc in rows if not loc or not (data_dir / "images" / loc).is_file()]
    if not missing:
        return []
    return [f"{len(missing)} active image(s) have no data here (the backup was made without --with-images): "
            f"{', '.join(sorted(missing)[:5])}{' ...' if len(missing) > 5 else ''}; copy the image files into "
            f"{data_dir / 'images'} or upload them again"]


def _member_text(tar: tarfile.TarFile, name: str) -> str | None:
    try:
        f = tar.extractfile(name)
    except KeyError:
        return None
    return f.read().decode() if f is not None else None


def _check_empty(db: Any, force: bool) -> None:
    names = inspect(db.engine).get_table_names()
    if not names:
        return
    if not force:
        raise InputParameterError(f"the target database already has {len(names)} table(s): restore into an empty "
                                  "database (or use --force to replace it)")
    drop_all_tables(db)


def drop_all_tables(db: Any) -> None:
    """Every table the database has, ours or not, dropped (restore --force; tests that need an
    empty PostgreSQL/MariaDB database: MariaDB's DDL is not transactional, so a failed run leaves debris)."""
    meta = MetaData()
    meta.reflect(db.engine)
    with db.engine.begin() as c:
        if db.dialect in ("mysql", "mariadb"):
            c.execute(text("SET FOREIGN_KEY_CHECKS=0"))
        meta.drop_all(c)


def _load_rows(db: Any, tar: tarfile.TarFile, manifest: dict[str, Any]) -> tuple[int, int]:
    meta = _metadata()
    tables = {t.name: t for t in meta.sorted_tables}
    wanted = manifest.get("tables", {})
    missing = sorted(set(wanted) - set(tables))
    if missing:
        raise InputParameterError(f"backup has tables this version does not know: {', '.join(missing)}")
    rows = 0
    with db.engine.begin() as c:
        if db.dialect in ("mysql", "mariadb"):
            c.execute(text("SET FOREIGN_KEY_CHECKS=0"))
        # migrations may seed rows (roles, counters): the backup's rows replace them
        present = set(inspect(c).get_table_names())
        for t in reversed(meta.sorted_tables):
            if t.name in present:
                c.execute(t.delete())
        for t in meta.sorted_tables:
            if t.name not in wanted:
                continue
            f = tar.extractfile(f"db/{t.name}.jsonl")
            if f is None:
                raise InputParameterError(f"backup is missing db/{t.name}.jsonl")
            rows += _insert_stream(c, t, io.TextIOWrapper(f, encoding="utf-8"))
        if db.dialect == "postgresql":
            _reset_sequences(c, meta)
        if db.dialect in ("mysql", "mariadb"):
            c.execute(text("SET FOREIGN_KEY_CHECKS=1"))
    return rows, len(wanted)


def _insert_stream(c: Connection, table: Table, lines: IO[str]) -> int:
    decode = _decoder(table)
    batch: list[dict[str, Any]] = []
    n = 0
    for line in lines:
        if not line.strip():
            continue
        batch.append(decode(json.loads(line)))
        if len(batch) >= BATCH:
            c.execute(table.insert(), batch)
            n += len(batch)
            batch = []
    if batch:
        c.execute(table.insert(), batch)
        n += len(batch)
    return n


def _reset_sequences(c: Connection, meta: MetaData) -> None:
    """Integer keys inserted explicitly leave PostgreSQL's sequences behind: move them past the rows."""
    for t in meta.sorted_tables:
        for col in t.primary_key.columns:
            single = len(t.primary_key.columns) == 1
            if isinstance(col.type, Integer) and single and col.autoincrement in (True, "auto"):
                c.execute(text(f"SELECT setval(pg_get_serial_sequence(:t, :c), "
                               f"COALESCE((SELECT MAX({col.name}) FROM {t.name}), 0) + 1, false)"),
                          {"t": t.name, "c": col.name})


def _repoint_catalog(db: Any, old: str, new: str) -> None:
    from sqlalchemy import select

    from core.keystone.models import Endpoint

    with db.session() as s:
        for ep in s.scalars(select(Endpoint)):
            if ep.url.startswith(old):
                ep.url = new + ep.url[len(old):]
        from core.keystone.assignments import bump_revision

        bump_revision(s)
