"""ocadm version."""
from __future__ import annotations

import click

from core.version import VERSION


@click.command("version")
def version() -> None:
    """Show the version."""
    click.echo(f"ocadm {VERSION}")
