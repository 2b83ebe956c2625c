"""ocadm serve: the controller, every service on one port."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

import click

from ocadm.commands import data_dir_option, load_settings

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

# An idle keep-alive connection is closed by the server after this long. It must outlast every
# client's own idle expiry (httpx's is 5 s; Go's is 90 s, but Go retries idempotent requests): at
# uvicorn's default of 5 s a client reusing a connection just as the server closed it got
# "connection reset by peer" (seen once in CI, on a plain GET after a 5 s pause).
KEEP_ALIVE_S = 75
# Requests at most this large come from the heap; larger ones are mapped and given back when freed.
# glibc's default threshold moves up to the largest block freed so far: after one password check
# (scrypt's 16 MiB) every later 16 MiB buffer came from the heap, which seldom shrinks, once per
# thread's arena: RSS grew from 120 to 153 MB over a few hundred requests and kept growing with load.
MMAP_THRESHOLD = 1024 * 1024
# The number of malloc arenas is left to glibc: capping it at 2 (tried for issue 22) saved ~0.8 MB
# idle but made requests 20-40 % dearer in server CPU (sqlite3 and other C code allocate outside
# the GIL, and the threads then queue on the arenas' locks). An operator can still set MALLOC_ARENA_MAX.


def fix_malloc_threshold() -> None:
    """Pin glibc's mmap threshold (which also stops its dynamic adjustment); nothing elsewhere."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):  # no mallopt (macOS): its allocator gives big blocks back itself
        return
    m_mmap_threshold = -3  # <malloc.h>
    mallopt(m_mmap_threshold, MMAP_THRESHOLD)


def preflight(settings: object) -> object:
    """Everything that must hold before we listen; a one-line reason and its fix otherwise."""
    from sqlalchemy.exc import DatabaseError, OperationalError

    from core.config import Settings
    from core.db.engine import Database
    from core.db.migrate import schema_state
    from core.errors import InputParameterError, ServiceUnavailableError
    from core.keystone.keys import KeyRepository

    assert isinstance(settings, Settings)
    if not KeyRepository(settings.key_dir).exists():
        raise InputParameterError(f"no token keys in {settings.key_dir}: run `ocadm init` or `ocadm token rotate`")
    db = Database(settings.database_url)
    try:
        state = schema_state(db.engine)
    except (OperationalError, DatabaseError) as e:
        db.dispose()
        reason = str(getattr(e, "orig", e)).splitlines()[0]
        raise ServiceUnavailableError(f"cannot read the database ({reason}); check --db-url / the database "
                                      "server, or restore a backup") from None
    problem = state.problem()
    if problem:
        db.dispose()
        raise InputParameterError(problem)
    return db


class Serving(Protocol):
    failure: str  # why the server stopped on its own ("" when it was asked to)

    def run(self) -> None: ...


def _draining_server(config: uvicorn.Config, app: FastAPI, stop_agent: Callable[[], None] | None) -> Serving:
    """A uvicorn.Server that, on SIGTERM/SIGINT, first tells long polls to answer now
    (app.state.draining) and stops the in-process agent, so shutdown waits for no request and cancels
    none (a cancelled long poll logged a traceback). Once it listens it sets app.state.listening: the
    background threads start then, not before the first request can be answered."""
    import threading

    import uvicorn

    listening = threading.Event()
    app.state.listening = listening

    class Server(uvicorn.Server):
        failure = ""  # why the region's background threads did not start (the server then stops)

        def background_failed(self, exc: BaseException) -> None:
            self.failure = str(exc) or type(exc).__name__
            self.should_exit = True

        async def startup(self, sockets: list[Any] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                listening.set()

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            app.state.draining = True
            from core.host_wake import HUB

            HUB.wake_all()  # waiting polls look again now, see draining and answer
            if stop_agent is not None and not self.should_exit:
                threading.Thread(target=stop_agent, name="agent-stop", daemon=True).start()
            super().handle_exit(sig, frame)

    server = Server(config)
    app.state.background_failed = server.background_failed
    return server


def check_port(host: str, port: int) -> None:
    """Refuse before saying we serve: uvicorn would print its own error only after our banner."""
    import socket

    from core.errors import ConflictError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise ConflictError(f"cannot listen on {host}:{port} ({e.strerror or e}): fix --listen / listen_host") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(addr)
        except OSError as e:
            raise ConflictError(f"cannot listen on {host}:{port} ({e.strerror or e}): stop what uses the port "
                                "or pass --port") from None


@click.command("serve")
@data_dir_option
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Override the listen port")
@click.option("--listen", "listen_host", default=None, help="Override the listen address")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None)
@click.option("--with-agent", is_flag=True,
              help="Also run a host agent in this process, on a simulated host (libvirt test:///)")
def serve(data_dir: Path | None, port: int | None, listen_host: str | None, log_level: str | None,
          with_agent: bool) -> None:
    """Run the controller (every service, one port)."""
    import gc
    import os

    # Importing and building the app allocates ~150k long-lived objects and no garbage worth a pass:
    # the collector's passes over them were 0.1–0.3 s of the start's CPU. Off while building; then
    # the built objects are frozen (never scanned again, so no request pays for a full pass over them).
    gc.disable()
    fix_malloc_threshold()
    os.umask(0o077)
    import uvicorn

    from core.api.app import create_app
    from core.api.http400 import HTTP_PROTOCOL

    s = load_settings(data_dir, port=port, listen_host=listen_host, log_level=log_level)
    check_port(s.listen_host, s.port)
    db = preflight(s)
    logging.basicConfig(level=s.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(s, db=db)  # type: ignore[arg-type]
    gc.freeze()
    gc.enable()
    click.echo(f"cloudpods-one controller on http://{s.listen_host}:{s.port} (data: {s.data_dir})", err=True)
    stop_agent: Callable[[], None] | None = None
    if with_agent:
        from core.hostapi.local_agent import start_local_agent

        # its threads register (retrying) once the port below is listening
        stop_agent = start_local_agent(s, db)
        click.echo(f"in-process agent: simulated host on {s.data_dir / 'agent' / 'node.xml'}", err=True)
    config = uvicorn.Config(app, host=s.listen_host, port=s.port, http=HTTP_PROTOCOL,
                            log_level=s.log_level if s.log_level != "info" else "warning",
                            access_log=s.log_level == "debug", server_header=False, timeout_graceful_shutdown=5,
                            timeout_keep_alive=KEEP_ALIVE_S)
    server = _draining_server(config, app, stop_agent)
    try:
        server.run()
    finally:
        if stop_agent is not None:
            stop_agent()
    if server.failure:
        raise click.ClickException(f"the controller stopped: its task workers and executor did not start "
                                   f"({server.failure}); see the log above, fix the database or "
                                   "configuration, and start it again")
