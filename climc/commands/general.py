"""General commands."""
from __future__ import annotations

from typing import Any

import click

from climc.output import output_options, show_object
from core.version import VERSION


@click.command("version")
@output_options
@click.pass_obj
def version(obj: Any) -> None:
    """Show client and server versions."""
    c = obj.client()
    server = c.request("GET", "compute_v2", "/version").text.strip()
    show_object({"client": VERSION, "server": server, "auth_url": c.auth.auth_url})
