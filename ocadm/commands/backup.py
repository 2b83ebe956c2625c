"""ocadm backup / ocadm restore: online, consistent backups (database rows, keys, config, images)."""
from __future__ import annotations

from pathlib import Path

import click

from ocadm.commands import data_dir_option, load_settings


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@click.command("backup")
@data_dir_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Backup file [default: <data_dir>/backups/cloudpods-<time>.tar.gz]")
@click.option("--with-images", is_flag=True, help="Also copy image files (their metadata is always included)")
def backup(data_dir: Path | None, output: Path | None, with_images: bool) -> None:
    """Back up a running controller: every table in one consistent snapshot, keys, config."""
    import os
    import time

    os.umask(0o077)
    from core.db.backup import create_backup

    s = load_settings(data_dir)
    out = output or s.data_dir / "backups" / f"cloudpods-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz"
    summary = create_backup(s, out, with_images=with_images)
    click.echo(f"Backed up {summary.rows} rows of {summary.tables} tables ({summary.dialect}) and "
               f"{summary.files} files to {summary.path} ({_size(summary.bytes)}, {summary.seconds:.1f}s)")
    click.echo("The file holds keys and password hashes: keep it private (it is written mode 0600).", err=True)


@click.command("restore")
@click.argument("backup_file", type=click.Path(dir_okay=False, path_type=Path))
@data_dir_option
@click.option("--db-url", default="", help="Database to restore into, empty [default: SQLite in the data dir]")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Listen port [default: the backup's]")
@click.option("--listen", "listen_host", default=None, help="Listen address [default: the backup's]")
@click.option("--public-host", default=None, help="Host name in the catalog [default: the backup's]")
@click.option("--force", is_flag=True, help="Replace an initialised data dir / a non-empty database")
def restore(backup_file: Path, data_dir: Path | None, db_url: str, port: int | None, listen_host: str | None,
            public_host: str | None, force: bool) -> None:
    """Restore a backup into a new data dir (and an empty database), then `ocadm serve` it."""
    import os

    os.umask(0o077)
    from core.config import default_data_dir, redact_url
    from core.db.backup import restore_backup

    d = (data_dir or default_data_dir()).expanduser().resolve()
    summary = restore_backup(backup_file, d, db_url=db_url, port=port, listen_host=listen_host,
                             public_host=public_host, force=force)
    from core.config import Settings

    s = Settings.load(d)
    click.echo(f"Restored {summary.rows} rows of {summary.tables} tables and {summary.files} files into {d} "
               f"({summary.seconds:.1f}s); database {redact_url(s.database_url)}")
    for w in summary.warnings:
        click.echo(f"Warning: {w}", err=True)
    click.echo(f"Next: ocadm serve --data-dir {d} &  then  source {d / 'rc_admin'} && climc server-list")
