"""``climc`` with no arguments (or ``climc shell``): an interactive shell, as Cloudpods' climc has.

Each line is a climc command line (without ``climc``) run in this process, so the token, the HTTP
connection and imported commands are reused (a cached-token list answers in milliseconds). On a
terminal: prompt_toolkit with history (~/.cache/cloudpods-one/climc_history) and TAB completion of
commands, options and resource names (the same completers as the shell scripts). Otherwise lines
are read from stdin, so ``climc < script`` runs a script. ``exit``, ``quit`` or Ctrl-D leave.
"""
from __future__ import annotations

import shlex
import sys
from typing import Any

import click

from climc.context import ClimcContext


def run_line(group: click.Group, line: str, base: dict[str, Any]) -> int:
    """Run one command line; errors print as climc prints them and never end the shell."""
    from core.cli_errors import EXIT_ERROR, EXIT_NOT_FOUND, message_for
    from core.errors import CloudpodsError, ResourceNotFoundError

    try:
        args = shlex.split(line)
    except ValueError as e:
        click.echo(f"Error: {e}", err=True)
        return 2
    if not args:
        return 0
    try:
        group.main(args=args, prog_name="climc", standalone_mode=False, obj=base)
        return 0
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        return 130
    except CloudpodsError as e:
        click.echo(f"Error: {message_for(e)}", err=True)
        return EXIT_NOT_FOUND if isinstance(e, ResourceNotFoundError) else EXIT_ERROR
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except Exception as e:  # one bad line must not end the session
        click.echo(f"Error: unexpected {type(e).__name__}: {e}", err=True)
        return EXIT_ERROR


def _completer(group: click.Group) -> Any:
    from click.shell_completion import ShellComplete
    from prompt_toolkit.completion import Completer, Completion

    class ClimcCompleter(Completer):
        def get_completions(self, document: Any, complete_event: Any) -> Any:
            text = document.text_before_cursor
            try:
                words = shlex.split(text)
            except ValueError:
                return
            incomplete = "" if not words or text.endswith(" ") else words.pop()
            try:
                items = ShellComplete(group, {}, "climc", "_CLIMC_COMPLETE").get_completions(words, incomplete)
            except Exception:
                return
            for it in items:
                yield Completion(it.value, start_position=-len(incomplete), display_meta=it.help or "")

    return ClimcCompleter()


def repl(group: click.Group, opts: dict[str, Any]) -> None:
    ClimcContext.shared = {}  # one client (token, connections) for every line of the session
    lines: Any
    if sys.stdin.isatty():
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory

        from core.client import cache_dir

        cache_dir().mkdir(parents=True, exist_ok=True)
        session: Any = PromptSession(history=FileHistory(str(cache_dir() / "climc_history")),
                                     completer=_completer(group), complete_while_typing=False)

        def prompt() -> Any:
            while True:
                try:
                    yield session.prompt("climc> ")
                except KeyboardInterrupt:
                    continue
                except EOFError:
                    return
        lines = prompt()
        click.echo("climc shell: commands as on the command line, TAB completes, `exit` or Ctrl-D leaves.",
                   err=True)
    else:
        lines = (ln.rstrip("\n") for ln in sys.stdin)
    status = 0
    for line in lines:
        if line.strip() in ("exit", "quit"):
            break
        if line.strip().startswith("#"):
            continue
        status = run_line(group, line, opts)
    sys.exit(status if not sys.stdin.isatty() else 0)
