"""How both CLIs end: one readable line and a non-zero exit, never a traceback (unless --debug)."""
from __future__ import annotations

import sys

import click

from core.errors import CloudpodsError, ConnectionFailedError, ResourceNotFoundError

EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND = 1, 2, 3


def message_for(e: CloudpodsError) -> str:
    status = getattr(e, "http_status", e.code)
    if isinstance(e, ConnectionFailedError):
        return e.details
    if status == 401:
        return f"authentication failed (401): {e.details}" if "authentication" not in e.details.lower() \
            else "authentication failed (401)"
    return f"{e.details} ({status} {e.error_class})" if status else e.details


class BatchFailure(click.ClickException):
    """A verb run over several ids where some failed: exit 3 when every failure was "not found"
    (as for one id), else 1."""

    def __init__(self, failures: list[CloudpodsError], total: int, what: str, verb: str) -> None:
        super().__init__(f"{len(failures)} of {total} {what}s failed to {verb}")
        # click declares exit_code on the class; this instance's depends on what failed
        self.exit_code = EXIT_NOT_FOUND if all(  # type: ignore[misc]
            isinstance(e, ResourceNotFoundError) for e in failures) else EXIT_ERROR


def run_cli(group: click.Group, prog: str, argv: list[str] | None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        rc = group.main(args=args, prog_name=prog, standalone_mode=False)
        if isinstance(rc, int) and rc != 0:  # ctx.exit(N) comes back as a return value here, not raised
            sys.exit(rc)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except CloudpodsError as e:
        if debug:
            raise
        click.echo(f"Error: {message_for(e)}", err=True)
        sys.exit(EXIT_NOT_FOUND if isinstance(e, ResourceNotFoundError) else EXIT_ERROR)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as e:
        if debug:
            raise
        from drivers.base import DriverError  # here, not at startup: most commands never load a driver

        if isinstance(e, DriverError):  # a driver's own error (unknown driver, missing SDK, refusal)
            click.echo(f"Error: {e}", err=True)
            sys.exit(EXIT_ERROR)
        click.echo(f"Error: unexpected {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                   f"(run with --debug for details)", err=True)
        sys.exit(EXIT_ERROR)
