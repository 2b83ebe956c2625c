"""ocadm version."""
from __future__ import annotations

import click

from core.version import build_info, version_text


@click.command("version")
@click.option("--json", "as_json", is_flag=True, help="Print version, commit, build date and runtime as JSON")
def version(as_json: bool) -> None:
    """Show the version."""
    if not as_json:
        click.echo(f"ocadm {version_text()}")
        return
    import json
    import platform
    import sys

    info: dict[str, object] = dict(build_info())
    info["python"] = platform.python_version()
    info["frozen"] = bool(getattr(sys, "frozen", False))  # True inside the PyInstaller binary
    click.echo(json.dumps(info, indent=2))
