"""Server consoles: ``server-vnc`` prints a one-time URL; ``server-console`` attaches the terminal.

    climc server-vnc web1            # http://…/webconsole/vnc#server=…&token=…  (open it in a browser; 600 s, once)
    climc server-console web1        # the serial console, like `virsh console` (Ctrl-] leaves)
    climc webconsole-baremetal bm1   # a bare-metal machine's serial-over-LAN console (Ctrl-] leaves)
"""
from __future__ import annotations

import os
import select
import sys
import time
from typing import Any

import click

from climc.commands.compute_common import S
from climc.output import output_options, show_object

ESCAPE = b"\x1d"  # Ctrl-]
QUIET_S = 2.0  # stdin not a terminal: the session ends this long after the input ended and output stopped


@click.command("server-vnc")
@click.argument("ident")
@output_options
@click.pass_obj
def server_vnc(obj: Any, ident: str) -> None:
    """Print the URL of a server's VNC console (noVNC in a browser; one-time, valid 600 s)."""
    out = obj.client().get(S, f"/servers/{ident}/vnc")["vnc"]
    if obj.output_format in ("json", "yaml", "kv", "flatten-kv", "flatten-table"):
        show_object(out)
    else:
        click.echo(out["url"])


@click.command("server-console")
@click.argument("ident")
@click.pass_obj
def server_console(obj: Any, ident: str) -> None:
    """Attach this terminal to a server's serial console (raw mode; Ctrl-] to leave)."""
    client = obj.client()
    out = client.post(S, f"/webconsole/server/{ident}", json={"protocol": "serial"})["webconsole"]
    _connect(client, out, f"the serial console of {out['server']}")


@click.command("webconsole-baremetal")
@click.argument("ident")
@click.pass_obj
def webconsole_baremetal(obj: Any, ident: str) -> None:
    """Attach this terminal to a bare-metal machine's serial console over its BMC (IPMI serial-over-LAN),
    whatever runs on it (raw mode; Ctrl-] to leave). IDENT is the host."""
    client = obj.client()
    out = client.post(S, f"/webconsole/baremetal/{ident}")["webconsole"]
    _connect(client, out, f"the serial-over-LAN console of machine {out['host']}")


def _connect(client: Any, out: dict[str, Any], what: str) -> None:
    ws = client.websocket(out["websocket_url"], headers={"X-Console-Token": out["token"]})
    tty = sys.stdin.isatty()
    banner = f"Connected to {what} (escape character is ^])\r\n"
    try:
        _attach(ws, sys.stdin.fileno(), sys.stdout.fileno(), tty, banner)
    finally:
        ws.close()
    if tty:
        click.echo("", err=True)
    code, reason = getattr(ws, "close_code", None), getattr(ws, "close_reason", "") or ""
    if code not in (None, 1000, 1005) and reason:  # the console ended on an error: say which
        raise click.ClickException(f"console closed: {reason}")


def _attach(ws: Any, fd_in: int, fd_out: int, tty: bool, banner: str = "") -> None:
    """Copy stdin to the websocket and the websocket to stdout until Ctrl-], the far side closes,
    or (stdin not a terminal) the input ended and the console went quiet."""
    import threading

    from websockets.exceptions import ConnectionClosed

    done = threading.Event()
    last_out = [time.monotonic()]

    def down() -> None:
        try:
            for msg in ws:
                os.write(fd_out, msg if isinstance(msg, bytes) else msg.encode())
                last_out[0] = time.monotonic()
        except (ConnectionClosed, OSError):
            pass
        finally:
            done.set()

    saved = None
    if tty:
        import termios
        import tty as ttymod

        saved = termios.tcgetattr(fd_in)
        ttymod.setraw(fd_in)
        sys.stderr.write(banner)  # after raw mode: what is typed from now on goes to the guest only
        sys.stderr.flush()
    t = threading.Thread(target=down, daemon=True)
    t.start()
    eof_at: float | None = None
    try:
        while not done.is_set():
            if eof_at is not None:
                if time.monotonic() - max(eof_at, last_out[0]) >= QUIET_S:
                    break
                done.wait(0.1)
                continue
            r, _, _ = select.select([fd_in], [], [], 0.2)
            if not r:
                continue
            data = os.read(fd_in, 4096)
            if not data:
                eof_at = time.monotonic()
                continue
            if tty and ESCAPE in data:
                data = data[:data.index(ESCAPE)]
                if data:
                    ws.send(data)
                break
            try:
                ws.send(data)
            except ConnectionClosed:
                break
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(fd_in, termios.TCSADRAIN, saved)
