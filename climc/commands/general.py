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


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script: commands, options and resource names complete on TAB.

    \b
    bash:  climc completion bash > ~/.local/share/bash-completion/completions/climc
    zsh:   climc completion zsh > "${fpath[1]}/_climc"
    fish:  climc completion fish > ~/.config/fish/completions/climc.fish
    """
    from click.shell_completion import get_completion_class

    from climc.group import cli

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(cli, {}, "climc", "_CLIMC_COMPLETE").source())


@click.command("shell")
def shell() -> None:
    """Open the interactive climc shell (also: climc with no arguments)."""
    from climc.group import cli
    from climc.repl import repl

    repl(cli, {})
