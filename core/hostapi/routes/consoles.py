"""The agent's outbound side of a console session (core/console relays it to the viewer)."""
from __future__ import annotations

from fastapi import APIRouter, WebSocket
from starlette.concurrency import run_in_threadpool

from core.api.context import Credential
from core.errors import CloudpodsError, ResourceNotFoundError, UnauthorizedError
from core.hostapi.routes.access import guard

router = APIRouter(prefix="/agent")


@router.websocket("/hosts/{host_id}/consoles/{session_id}")
async def console_link(ws: WebSocket, host_id: str, session_id: str) -> None:
    """The agent dials out to carry one console session (it was told by its long poll)."""
    from core.console import relay
    from core.console.models import ConsoleSession
    from core.console.routes import ws_deny, ws_user

    def allowed(cred: Credential) -> None:
        with ws.app.state.db.session() as s:
            guard(s, cred, host_id)
            cs = s.get(ConsoleSession, session_id)
            if cs is None or cs.host_id != host_id or cs.status != "dispatched":
                raise ResourceNotFoundError(f"no console session {session_id} waits for host {host_id}")

    try:
        cred = await ws_user(ws)
        if cred is None:
            raise UnauthorizedError("missing X-Auth-Token")
        await run_in_threadpool(allowed, cred)
    except CloudpodsError as err:
        await ws_deny(ws, err)
        return
    await relay.agent_arrived(session_id, ws)
