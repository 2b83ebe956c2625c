"""ocadm token: token signing keys."""
from __future__ import annotations

from pathlib import Path

import click

from ocadm.commands import data_dir_option, load_settings


@click.group("token")
def token() -> None:
    """Manage token signing keys."""


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
