"""Every registered command loads and answers --help (lazy loading's safety net)."""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from climc.command_table import COMMANDS as CLIMC
from climc.main import cli as climc_cli
from ocadm.command_table import COMMANDS as OCADM
from ocadm.main import cli as ocadm_cli


def _walk(group: click.Group, ctx: click.Context, prefix: list[str]) -> list[list[str]]:
    out = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        out.append(prefix + [name])
        if isinstance(cmd, click.Group):
            out += _walk(cmd, ctx, prefix + [name])
    return out


@pytest.mark.parametrize("cli,table", [(climc_cli, CLIMC), (ocadm_cli, OCADM)])
def test_help_on_every_command(cli: click.Group, table: dict[str, tuple[str, str]]) -> None:
    runner = CliRunner()
    with click.Context(cli) as ctx:
        paths = _walk(cli, ctx, [])
    from climc.vocabulary import COMMANDS as OLD_NAMES  # listed under their new names (the same commands)

    assert {p[0] for p in paths} >= set(table) - set(OLD_NAMES)
    for path in paths:
        r = runner.invoke(cli, [*path, "--help"])
        assert r.exit_code == 0, (path, r.output, r.exception)
        assert "Usage:" in r.output


@pytest.mark.parametrize("table", [CLIMC, OCADM])
def test_table_help_matches_docstring(table: dict[str, tuple[str, str]]) -> None:
    """The table's short help is what --help lists; keep it equal to the command's own first line."""
    import importlib

    from climc.command_table import ALL_ALIASES

    for name, (ref, short) in table.items():
        mod, _, attr = ref.partition(":")
        cmd = getattr(importlib.import_module(mod), attr)
        assert cmd.name == ALL_ALIASES.get(name, name), f"{ref} is named {cmd.name}, table says {name}"
        assert short, name
