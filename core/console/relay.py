"""The console relay inside one replica: a client's websocket meets the host agent's.

    client (browser/noVNC, climc) ──ws──▶ replica ◀──ws── agent (dials OUT, told by its long poll)
                                              bytes pumped both ways, counted

The client's side registers a ``Pending`` under the session id *before* the redemption commits
(so the agent, told on its next long poll, always finds it), then waits up to ``AGENT_WAIT_S``
for the agent's websocket. The agent's first message is JSON, ``{"endpoint": ...}`` (where the
guest's console listens on the host, recorded on the session) or ``{"error": ...}``; binary
frames follow in both directions.

Several replicas: a session lives on the replica the client reached. The agent dials the
session's ``relay_url`` (that replica's ``console_relay_url`` setting, e.g. its pod address)
or, if none is set, its configured controller URL. An agent that reaches a replica which does
not hold the session is closed with 4409 and the client sees "agent did not connect" after
``AGENT_WAIT_S``: behind a load balancer, set ``console_relay_url`` per replica.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

# The agent dials only once it has opened the guest's console (core/agent/console.py), so this wait covers
# that opening too: a bare-metal machine's SOL activation alone may take SLOW x the BMC timeout = 30 s
# (drivers/baremetal/common.py: two activation windows after the last session's logout). It was 20 s,
# shorter than that inner wait, so a slow activation ended as 'did not connect' instead of its own answer.
AGENT_WAIT_S = 60.0
CLOSE_NOT_HERE = 4409  # the agent reached a replica that does not hold the session


@dataclass
class Pending:
    agent: asyncio.Future[WebSocket]
    done: asyncio.Event = field(default_factory=asyncio.Event)
    up: int = 0  # client -> guest bytes
    down: int = 0  # guest -> client bytes


_pending: dict[str, Pending] = {}


def expect(session_id: str) -> Pending | None:
    """Wait for the agent of ``session_id`` here; None if a client already waits for it (the same
    token presented twice at once: the redemption refuses the second, which must not unseat the first)."""
    if session_id in _pending:
        return None
    p = Pending(agent=asyncio.get_running_loop().create_future())
    _pending[session_id] = p
    return p


def forget(session_id: str, p: Pending) -> None:
    if _pending.get(session_id) is p:
        del _pending[session_id]
    p.done.set()
    if not p.agent.done():
        p.agent.cancel()


async def agent_arrived(session_id: str, ws: WebSocket) -> None:
    """The agent's websocket for ``session_id``: handed to the waiting client side, held open
    until the session ends (returning from the ASGI handler would close it)."""
    p = _pending.get(session_id)
    if p is None or p.agent.done():
        await ws.close(code=CLOSE_NOT_HERE, reason="this replica does not hold the console session")
        return
    await ws.accept()
    p.agent.set_result(ws)
    await p.done.wait()


async def first_message(agent: WebSocket, timeout: float = AGENT_WAIT_S) -> dict[str, Any]:
    msg = await asyncio.wait_for(agent.receive(), timeout)
    if msg["type"] == "websocket.disconnect":
        return {"error": "the host agent closed the console connection"}
    try:
        out = json.loads(msg.get("text") or (msg.get("bytes") or b"").decode())
    except (ValueError, UnicodeDecodeError):
        return {"error": "the host agent sent no console header"}
    return out if isinstance(out, dict) else {"error": "the host agent sent a bad console header"}


async def pump(client: WebSocket, agent: WebSocket, p: Pending) -> str:
    """Bytes both ways until one side closes; returns who ended it."""

    async def one_way(src: WebSocket, dst: WebSocket, up: bool) -> str:
        while True:
            try:
                msg = await src.receive()
            except (WebSocketDisconnect, RuntimeError):
                return "client" if up else "agent"
            if msg["type"] == "websocket.disconnect":
                return "client" if up else "agent"
            data = msg.get("bytes")
            if data is None:
                data = (msg.get("text") or "").encode()
            if not data:
                continue
            if up:
                p.up += len(data)
            else:
                p.down += len(data)
            try:
                await dst.send_bytes(data)
            except (WebSocketDisconnect, RuntimeError, OSError):
                return "agent" if up else "client"

    tasks = [asyncio.create_task(one_way(client, agent, True)), asyncio.create_task(one_way(agent, client, False))]
    done, rest = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for t in rest:
        t.cancel()
    for t in rest:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
    ended = next(iter(done)).result()
    for ws in (client, agent):
        with contextlib.suppress(Exception):
            await ws.close()
    return ended
