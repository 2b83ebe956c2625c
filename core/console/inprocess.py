"""Console sessions of executor hosts (a bare-metal machine's serial-over-LAN): the replica is the agent.

An agent host's session is carried by its agent: told by its long poll, it runs ``ConsoleBridge``
(core/agent/console.py) and dials a websocket back to the replica holding the client. An executor
host has no agent: its driver runs inside every replica (core/region/hosted.py, where its BMC
calls already run). So the replica that holds the client's websocket runs the same
``ConsoleBridge`` itself, in a thread, and hands the relay an in-process pair of ends instead of a
websocket. Tokens, RBAC, audit, the relay's byte counting and the session record stay the same.

    start(loop, {"id": sid, "server_id": ..., "protocol": "serial"}, host_id, driver, blob)
"""
from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("cloudpods.console")


class _Pipe:
    """Both ends of one session: the bridge's (websockets' sync client interface: send, iteration,
    close) and the relay's (the part of starlette's WebSocket that core/console/relay.py uses)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.to_relay: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.to_bridge: queue.Queue[bytes | None] = queue.Queue()
        self.closed = threading.Event()

    # ---- the bridge's end (a thread) ----------------------------------------------------------
    def send(self, data: str | bytes) -> None:
        if self.closed.is_set():
            raise OSError("console session closed")
        msg = {"type": "websocket.receive", "text": data} if isinstance(data, str) else \
            {"type": "websocket.receive", "bytes": bytes(data)}
        self.loop.call_soon_threadsafe(self.to_relay.put_nowait, msg)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            data = self.to_bridge.get()
            if data is None:
                return
            yield data

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self.to_bridge.put(None)
            self.loop.call_soon_threadsafe(self.to_relay.put_nowait, {"type": "websocket.disconnect"})

    # ---- the relay's end (the event loop) ------------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        return await self.to_relay.get()

    async def send_bytes(self, data: bytes) -> None:
        if self.closed.is_set():
            raise RuntimeError("console session closed")
        self.to_bridge.put(data)


class _Link:
    """What ``ConsoleBridge`` asks of its link: the socket of one session."""

    def __init__(self, pipe: _Pipe, relay_end: Any) -> None:
        self.pipe, self.relay_end = pipe, relay_end

    def console_socket(self, session_id: str, relay_url: str = "") -> _Pipe:
        from core.console import relay

        asyncio.run_coroutine_threadsafe(relay.agent_arrived(session_id, self.relay_end), self.pipe.loop)
        return self.pipe


class _RelayEnd:
    """The pipe as the relay sees it; its close() ends the bridge's side too."""

    def __init__(self, pipe: _Pipe) -> None:
        self.pipe = pipe

    async def accept(self, subprotocol: str | None = None) -> None:
        return None

    async def receive(self) -> dict[str, Any]:
        return await self.pipe.receive()

    async def send_bytes(self, data: bytes) -> None:
        await self.pipe.send_bytes(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.pipe.close()


def start(loop: asyncio.AbstractEventLoop, session: dict[str, Any], host_id: str, driver: str, blob: str) -> None:
    """Open ``session``'s console through the host's driver in this replica (a thread of its own)."""
    from core.agent.console import ConsoleBridge
    from core.region.hosted import runtime
    from drivers.base import DriverError

    pipe = _Pipe(loop)

    def run() -> None:
        try:
            hosted = runtime().drivers.get(host_id, driver, blob)
        except Exception as exc:  # the client is told why, as an agent would tell it
            _Link(pipe, _RelayEnd(pipe)).console_socket(str(session["id"]))
            why = exc if isinstance(exc, DriverError) else f"{type(exc).__name__}: {exc}"
            pipe.send(json.dumps({"error": f"{session.get('protocol')} console: the host's driver does not load: "
                                           f"{why}"}))
            pipe.close()
            return
        ConsoleBridge(hosted, _Link(pipe, _RelayEnd(pipe))).serve(session)

    threading.Thread(target=run, name=f"console-{str(session['id'])[:8]}", daemon=True).start()
