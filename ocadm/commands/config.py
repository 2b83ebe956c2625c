"""ocadm config show."""
from __future__ import annotations

from pathlib import Path

import click

from ocadm.commands import data_dir_option, load_settings


@click.group("config")
def config() -> None:
    """Show the controller's settings."""


@config.command("show")
@data_dir_option
@click.option("-o", "--output-format", type=click.Choice(["table", "json", "yaml", "kv"]), default="table")
def show(data_dir: Path | None, output_format: str) -> None:
    """Show the effective settings (file + CLOUDPODS_* environment), secrets masked."""
    from climc.output import show_object

    s = load_settings(data_dir)
    ctx = click.get_current_context()
    ctx.obj = type("Out", (), {"output_format": output_format, "columns": ()})()
    show_object(s.redacted())
