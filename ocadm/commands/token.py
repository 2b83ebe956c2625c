"""ocadm token: token signing keys."""
from __future__ import annotations

from pathlib import Path

import click

from ocadm.commands import data_dir_option, load_settings


@click.group("token")
def token() -> None:
    """Manage token signing keys and host join tokens."""


@token.command("rotate")
@data_dir_option
def rotate(data_dir: Path | None) -> None:
    """Promote the staged key to primary and stage a new one (restart or reload replicas after)."""
    from core.keystone.keys import KeyRepository

    s = load_settings(data_dir)
    repo = KeyRepository(s.key_dir)
    if not repo.exists():
        repo.create()
        click.echo(f"Created a new key repository in {s.key_dir}.")
        return
    primary = repo.rotate()
    click.echo(f"Rotated: key {primary} is now primary; tokens signed by older active keys stay valid.")


@token.command("create")
@data_dir_option
@click.option("--zone", default=None, help="Zone the new hosts join [default: the init zone]")
@click.option("--ttl", "ttl", default="1h", show_default=True,
              help="Valid for (90s, 30m, 1h, 2d or seconds; 60s to 7d)")
@click.option("--uses", "uses", default="1", show_default=True,
              help="Hosts it enrols, 1-1000 (a Kubernetes agent DaemonSet: the number of nodes)")
@click.option("--description", default="", help="A note stored with the token")
def create(data_dir: Path | None, zone: str | None, ttl: str, uses: str, description: str) -> None:
    """Create a join token for new hosts (each `ocadm join` with it spends one use)."""
    import getpass

    from core.db.engine import Database
    from core.errors import InputParameterError
    from core.region.defaults import DEFAULTS
    from core.region.enroll import MAX_USES, create_join_token, parse_ttl

    seconds = parse_ttl(ttl)  # bad input fails before the data dir or database is touched
    if not uses.strip().isascii() or not uses.strip().isdigit():
        raise InputParameterError(f"--uses {uses!r}: expected a whole number between 1 and {MAX_USES}")
    count = int(uses)
    s = load_settings(data_dir)
    db = Database(s.database_url)
    try:
        with db.session() as session:
            plain, row = create_join_token(session, zone=zone or DEFAULTS.zone, ttl_s=seconds, uses=count,
                                           created_by=f"ocadm:{getpass.getuser()}", description=description)
            expires = row.expires_at.isoformat(timespec="seconds")
    finally:
        db.dispose()
    click.echo(plain)
    what = "One-time join token" if count == 1 else f"Join token for up to {count} hosts"
    click.echo(f"{what}, expires {expires} (shown only now). On each new host, as root:", err=True)
    click.echo(f"  ocadm join --controller {s.public_url} --token {plain}", err=True)


@token.command("list")
@data_dir_option
@click.option("-o", "--output-format", type=click.Choice(["table", "json", "yaml"]), default="table")
def list_(data_dir: Path | None, output_format: str) -> None:
    """List join tokens: uses, used, expiry and state (never the token itself)."""
    from climc.output import show_list
    from core.db.engine import Database
    from core.region.enroll import list_join_tokens

    s = load_settings(data_dir)
    db = Database(s.database_url)
    try:
        with db.session() as session:
            infos = list_join_tokens(session)
    finally:
        db.dispose()
    rows = [{"id": t.id, "state": t.state, "uses": t.uses, "used": t.used,
             "expires_at": t.expires_at.isoformat(timespec="seconds"),
             "last_used_at": t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "",
             "created_by": t.created_by, "description": t.description} for t in infos]
    ctx = click.get_current_context()
    ctx.obj = type("Out", (), {"output_format": output_format, "columns": ()})()
    show_list(rows, columns=["id", "state", "uses", "used", "expires_at", "last_used_at", "created_by",
                             "description"])
