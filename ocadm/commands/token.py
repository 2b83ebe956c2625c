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


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _ttl(value: str) -> int:
    """``90s``, ``30m``, ``2h``, ``1d`` or plain seconds."""
    from core.errors import InputParameterError

    v = value.strip().lower()
    unit = v[-1] if v and v[-1] in _UNITS else "s"
    num = v[:-1] if v and v[-1] in _UNITS else v
    if not num.isdigit():
        raise InputParameterError(f"--ttl {value!r}: expected a number of seconds or 30m, 2h, 1d")
    return int(num) * _UNITS[unit]


@token.command("create")
@data_dir_option
@click.option("--zone", default=None, help="Zone the new host joins [default: the init zone]")
@click.option("--ttl", "ttl", default="1h", show_default=True, help="Valid for (90s, 30m, 2h, 1d; at most 7d)")
@click.option("--description", default="", help="A note stored with the token")
def create(data_dir: Path | None, zone: str | None, ttl: str, description: str) -> None:
    """Create a one-time join token for a new host (`ocadm join` on that host spends it)."""
    import getpass

    from core.db.engine import Database
    from core.hostapi.enroll import create_join_token
    from core.region.defaults import DEFAULTS

    s = load_settings(data_dir)
    seconds = _ttl(ttl)
    db = Database(s.database_url)
    try:
        with db.session() as session:
            plain, row = create_join_token(session, zone=zone or DEFAULTS.zone, ttl_s=seconds,
                                           created_by=f"ocadm:{getpass.getuser()}", description=description)
            expires = row.expires_at.isoformat(timespec="seconds")
    finally:
        db.dispose()
    click.echo(plain)
    click.echo(f"One-time join token, expires {expires}. On the new host, as root:", err=True)
    click.echo(f"  ocadm join --controller {s.public_url} --token {plain}", err=True)
