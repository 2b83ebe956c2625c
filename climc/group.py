"""climc's command group: global options (OpenStack's OS_* conventions, API.md §7), the context every
command gets, and how a command line runs (climc.main decides first, without importing this)."""
from __future__ import annotations

import copy
from typing import Any

import click

from climc.command_table import COMMANDS, SHORT_NAMES
from climc.context import ClimcContext
from core.cli import LazyGroup
from core.version import version_text

OUTPUT_FORMATS = ("table", "kv", "json", "yaml", "flatten-table", "flatten-kv", "value")


class ClimcGroup(LazyGroup):
    """climc's commands, each with help on every option (climc.help_texts)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from climc.vocabulary import COMMANDS as OLD_NAMES

        return [n for n in super().list_commands(ctx) if n not in OLD_NAMES]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from climc.vocabulary import COMMANDS as OLD_NAMES

        rows = [(n, self.table[n][1]) for n in sorted(self.table) if n not in OLD_NAMES]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                             list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        if cmd is not None and name and not ctx.resilient_parsing:  # not while a shell completes a word
            from climc.vocabulary import notes

            for line in notes(cmd.name or name, name, rest):
                click.echo(line, err=True)
        return name, cmd, rest

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is not None:
            from climc.help_texts import fill_help, hide_old_spellings

            fill_help(cmd)
            hide_old_spellings(cmd)
            if name in SHORT_NAMES:
                # a copy that only says which Cloudpods verb it is: same callback, same option objects
                cmd = copy.copy(cmd)
                cmd.help = f"{cmd.help or ''}\n\nShort name of Cloudpods' `{SHORT_NAMES[name]}`."
        return cmd


@click.group(cls=ClimcGroup, table=COMMANDS, context_settings={"help_option_names": ["-h", "--help"],
                                                                  "max_content_width": 110})
@click.version_option(version_text(), "--version", prog_name="climc", message="%(prog)s %(version)s")
@click.option("--os-auth-url", envvar="OS_AUTH_URL", metavar="URL", help="Identity endpoint [OS_AUTH_URL]")
@click.option("--os-username", envvar="OS_USERNAME", metavar="NAME", help="[OS_USERNAME]")
@click.option("--os-password", envvar="OS_PASSWORD", metavar="PW", help="[OS_PASSWORD]")
@click.option("--os-project-name", envvar="OS_PROJECT_NAME", metavar="NAME", help="[OS_PROJECT_NAME]")
@click.option("--os-project-domain", envvar="OS_PROJECT_DOMAIN_NAME", metavar="NAME",
              help="[OS_PROJECT_DOMAIN_NAME]")
@click.option("--os-user-domain", envvar="OS_USER_DOMAIN_NAME", metavar="NAME", help="[OS_USER_DOMAIN_NAME]")
@click.option("--os-region-name", envvar="OS_REGION_NAME", metavar="REGION", help="[OS_REGION_NAME]")
@click.option("--os-auth-token", envvar="OS_AUTH_TOKEN", metavar="TOKEN", help="Use this token [OS_AUTH_TOKEN]")
@click.option("--os-endpoint-type", "--os-interface", "os_endpoint_type", envvar=["OS_ENDPOINT_TYPE", "OS_INTERFACE"],
              metavar="TYPE", help="public|internal|admin, or publicURL|internalURL|adminURL [OS_ENDPOINT_TYPE]")
@click.option("--os-system-scope", is_flag=True, help="Ask for a system-scoped token")
@click.option("--debug", is_flag=True, help="Print each request as curl (token redacted) and tracebacks")
@click.option("-k", "--insecure", is_flag=True, help="Do not verify TLS certificates")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="HTTP timeout in seconds")
@click.option("-o", "--output-format", envvar="CLIMC_OUTPUT_FORMAT", type=click.Choice(OUTPUT_FORMATS),
              help="Output format [CLIMC_OUTPUT_FORMAT]")
@click.option("--parallel-run", type=click.IntRange(1, 1000), metavar="N",
              help="Run the command N times concurrently and print a latency summary (stress runs)")
@click.pass_context
def cli(ctx: click.Context, **opts: Any) -> None:
    """climc — manage a cloudpods-one cloud. `source rc_admin` first, then e.g. `climc endpoint-list`."""
    ctx.obj = ClimcContext(**opts)


def run(args: list[str]) -> None:
    import os

    from core.cli_errors import run_cli

    if "_CLIMC_COMPLETE" in os.environ:  # a shell asking for completions, not a user
        run_cli(cli, "climc", args)
        return
    if not args or args == ["shell"]:
        from climc.repl import repl

        repl(cli, {})
        return
    if "--parallel-run" in args or any(a.startswith("--parallel-run=") for a in args):
        from climc.parallel import parallel_run

        parallel_run(args)
        return
    run_cli(cli, "climc", args)
