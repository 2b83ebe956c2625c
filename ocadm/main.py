"""ocadm: the operator's command line."""
from __future__ import annotations

import sys

import click

from core.cli import LazyGroup
from core.version import version_text
from ocadm.command_table import COMMANDS


@click.group(cls=LazyGroup, table=COMMANDS, context_settings={"help_option_names": ["-h", "--help"],
                                                                  "max_content_width": 110})
@click.version_option(version_text(), "--version", prog_name="ocadm", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show tracebacks")
def cli(debug: bool) -> None:
    """ocadm — run and operate a cloudpods-one controller."""


def main(argv: list[str] | None = None) -> None:
    from core.cli_errors import run_cli

    run_cli(cli, "ocadm", argv)


if __name__ == "__main__":
    main(sys.argv[1:])
