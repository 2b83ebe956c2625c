"""Lazy click groups shared by climc and ocadm: commands load on first use, from a static table.

The table maps ``command-name -> ("package.module:attr", "short help")`` so ``--help`` lists every
command without importing any of them (start-up time is a tested property).
"""
from __future__ import annotations

from typing import Any

import click

from core.loader import load

CommandTable = dict[str, tuple[str, str]]


class LazyGroup(click.Group):
    def __init__(self, *args: Any, table: CommandTable, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.table = table

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.table, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.table:
            ref = self.table[name][0]
            cmd = load(ref)
            if not isinstance(cmd, click.Command):
                raise TypeError(f"{ref} is not a click command")
            return cmd
        return super().get_command(ctx, name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                             list[str]]:
        """An unknown command is a usage error that suggests the nearest names ("did you mean")."""
        name = click.utils.make_str(args[0])
        if self.get_command(ctx, name) is None and not name.startswith("-"):
            import difflib

            names = self.list_commands(ctx)
            # the same words in another order first (list-server -> server-list), then near spellings
            close = [c for c in names if sorted(c.split("-")) == sorted(name.split("-"))]
            close = close or difflib.get_close_matches(name, names, n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(close)}?" if close else f" See `{ctx.info_name} --help`."
            raise click.UsageError(f"No such command {name!r}.{hint}", ctx)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, self.table[n][1]) for n in sorted(self.table)]
        rows += [(n, c.get_short_help_str(60)) for n, c in sorted(self.commands.items()) if n not in self.table]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
