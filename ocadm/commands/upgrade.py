"""ocadm upgrade: apply database migrations (safe to run from several replicas at once)."""
from __future__ import annotations

from pathlib import Path

import click

from ocadm.commands import data_dir_option, load_settings


@click.command("upgrade")
@data_dir_option
def upgrade(data_dir: Path | None) -> None:
    """Apply database migrations."""
    from core.db.engine import Database
    from core.db.migrate import schema_state
    from core.db.migrate import upgrade as do_upgrade
    from core.errors import InputParameterError

    s = load_settings(data_dir)
    db = Database(s.database_url)
    try:
        before = schema_state(db.engine)
        if before.state == "ahead":
            raise InputParameterError(before.problem() or "database is newer than this code")
        after = do_upgrade(db.engine, lock_file=s.data_dir / "migrate.lock")
    finally:
        db.dispose()
    if before.db == after.db:
        click.echo(f"Database already at head ({', '.join(sorted(after.db))}).")
    else:
        click.echo(f"Upgraded {', '.join(sorted(before.db)) or '(empty)'} -> {', '.join(sorted(after.db))}.")
