"""ocadm init: a working controller's data dir in one step."""
from __future__ import annotations

import secrets
import shlex
import shutil
import time
from pathlib import Path

import click

from ocadm.commands import data_dir_option


def rc_text(auth_url: str, password: str, region: str, data_dir: Path | None = None) -> str:
    """The admin's rc file; with ``data_dir``, ocadm finds the controller from it too (CLOUDPODS_DATA_DIR)."""
    return "\n".join([
        "# cloudpods-one admin credentials (keep this file private)",
        f"export OS_AUTH_URL={auth_url}",
        "export OS_USERNAME=admin",
        f"export OS_PASSWORD='{password}'",
        "export OS_PROJECT_NAME=system",
        "export OS_PROJECT_DOMAIN_NAME=Default",
        "export OS_USER_DOMAIN_NAME=Default",
        f"export OS_REGION_NAME={region}",
        "export OS_IDENTITY_API_VERSION=3",
        "export OS_INTERFACE=public",
        *([f"export CLOUDPODS_DATA_DIR={shlex.quote(str(data_dir))}"] if data_dir else []),
        "",
    ])


@click.command("init")
@data_dir_option
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Listen port (default 30300)")
@click.option("--listen", "listen_host", default=None, help="Listen address (default 127.0.0.1)")
@click.option("--public-host", default=None, help="Host name clients use in the catalog (default: 127.0.0.1)")
@click.option("--db-url", default=None, help="postgresql://... or mysql://... (default: SQLite in the data dir)")
@click.option("--force", is_flag=True, help="Re-create: discard the existing database, keys and credentials")
def init(data_dir: Path | None, port: int | None, listen_host: str | None, public_host: str | None,
         db_url: str | None, force: bool) -> None:
    """Create config, database, keys and the admin user."""
    import os

    os.umask(0o077)  # the database holds password hashes: private from the first byte
    from core.config import Settings, default_data_dir, write_private
    from core.db.engine import Database
    from core.db.migrate import upgrade
    from core.keystone.bootstrap import bootstrap
    from core.keystone.keys import KeyRepository
    from core.region.defaults import create_defaults

    t0 = time.monotonic()
    d = (data_dir or default_data_dir()).expanduser().resolve()
    existing = Settings.load(d) if (d / "config.toml").exists() else None
    if existing is not None and not force:
        click.echo(f"{d} is already initialised; nothing changed (use --force to re-create it).", err=True)
        click.echo(f"Credentials: source {d / 'rc_admin'}", err=True)
        return
    if existing is not None:
        _wipe(existing)
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    s = Settings.load(d, port=port, listen_host=listen_host, public_host=public_host, db_url=db_url)
    s.save()
    KeyRepository(s.key_dir).create()
    db = Database(s.database_url)
    try:
        upgrade(db.engine, lock_file=d / "migrate.lock")
        password = secrets.token_urlsafe(18)
        with db.session() as session:
            bootstrap(session, admin_password=password, public_url=s.public_url, region_id=s.region_id)
            create_defaults(session)  # zone, wire, storage, network: the first server-create just works
    finally:
        db.dispose()
    auth_url = f"{s.public_url}/api/s/identity/v3"
    rc = d / "rc_admin"
    write_private(rc, rc_text(auth_url, password, s.region_id, d.resolve()))
    click.echo(f"Initialised {d} in {time.monotonic() - t0:.1f}s")
    click.echo(f"  database:  {_shown(s.database_url)}")
    click.echo(f"  listen:    {s.listen_host}:{s.port}")
    click.echo(f"  auth url:  {auth_url}")
    click.echo(f"  admin password (shown once; also in {rc}, mode 0600): {password}")
    click.echo(f"Next: ocadm serve --data-dir {d} &  then  source {rc} && climc endpoint-list")


def _shown(url: str) -> str:
    from core.config import redact_url

    return redact_url(url)


def _wipe(s: object) -> None:
    from core.config import Settings

    assert isinstance(s, Settings)
    if s.database_url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            Path(str(s.data_dir / "cloudpods.db") + suffix).unlink(missing_ok=True)
    else:
        from sqlalchemy import MetaData

        from core.db.engine import Database

        db = Database(s.database_url)
        try:
            meta = MetaData()
            meta.reflect(db.engine)
            meta.drop_all(db.engine)
        finally:
            db.dispose()
    shutil.rmtree(s.key_dir, ignore_errors=True)
    (s.data_dir / "rc_admin").unlink(missing_ok=True)
