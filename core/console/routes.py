"""Console routes (mounted under ``/api/s/compute_v2`` before the generic resource grammar).

Getting a console (RBAC: ``compute:servers:perform`` on the server; another tenant's server is 404):

    GET  /servers/<id>/vnc                       Cloudpods' region shape: {"vnc": {url, token, ...}}
    POST /webconsole/server/<id>  {protocol}      Cloudpods' webconsole shape: {access_url, connect_params, ...}
    POST /servers/<id>/remote-consoles            Nova's shape (2.6+): {"remote_console": {protocol, type, url}}
    POST /webconsole/baremetal/<host>             a bare-metal machine's own serial console (SOL over its BMC)

Using one (the one-time token admits the connection, see core/console/tokens.py):

    GET  /webconsole/vnc#token=<t>&server=<id>    the noVNC page (token in the fragment: never sent, never logged)
    GET  /webconsole/novnc/<path>                 noVNC's own files (its Debian/npm package, no CDN)
    WS   /webconsole/ws/server/<id>/<protocol>    the console bytes; the token as header X-Console-Token,
                                                  subprotocol ``cptoken.<t>`` (browsers) or ``?token=`` (Nova URLs)
    WS   /webconsole/ws/baremetal/<host>/serial   the same for a machine's own console

A host agent carries its guests' sessions (told by its long poll, it dials back); a host run by the
controller's executor (bare metal) has its session carried by the replica that holds the client
(core/console/inprocess.py), through the same bridge.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Request, WebSocket
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from core.api.context import Credential
from core.api.deps import CredentialDep, SessionDep, credential_of_token
from core.console import relay, tokens
from core.errors import CloudpodsError, InputParameterError, ResourceNotFoundError
from core.region.common import begin_write, iso, json_response

router = APIRouter()
AnyBody = Body(default=None)
SUBPROTOCOL_PREFIX = "cptoken."
# noVNC from its Debian package (apt install novnc) or a directory holding its npm package's files
NOVNC_DIRS = ("/usr/share/novnc", "/usr/share/javascript/novnc", "/usr/lib/node_modules/@novnc/novnc")


def _server(session: Any, cred: Credential, ident: str) -> Any:
    from core.region.registry import get_manager

    m = get_manager("servers")
    row = m.fetch(session, cred, ident, pending=False)
    m.enforce(cred, "perform", row)
    return row


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def _issue(session: Any, cred: Credential, request: Request, ident: str, protocol: str) -> dict[str, Any]:
    begin_write(session)
    server = _server(session, cred, ident)
    token, row = tokens.issue(session, cred, server, protocol)
    return _answer(session, request, row, token, f"server/{server.id}/{protocol}", server.id, server.name)


def _answer(session: Any, request: Request, row: Any, token: str, path: str, target_id: str, name: str
            ) -> dict[str, Any]:
    protocol = row.protocol
    base = _base(request)
    prefix = "/api/s/compute_v2/webconsole"
    ws_scheme = "wss" if request.url.scheme == "https" else "ws"
    ws = f"{ws_scheme}://{request.url.netloc}{prefix}/ws/{path}"
    out = {
        "id": row.id,
        "server_id": row.server_id,
        "server": name,
        "protocol": protocol,
        "token": token,
        "expires_at": iso(row.expires_at),
        "ttl_s": tokens.TTL_S,
        "websocket_url": ws,
        # for a browser (vnc) the page; the token rides in the fragment, which no server ever sees
        "url": (f"{base}{prefix}/vnc#server={target_id}&token={quote(token)}" if protocol == "vnc"
                else f"{ws}?token={quote(token)}"),
    }
    session.commit()
    return out


@router.get("/servers/{ident}/vnc")
def server_vnc(ident: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    out = _issue(session, cred, request, ident, "vnc")
    return json_response({"vnc": {**out, "access_url": out["url"], "hypervisor": "kvm"}})


@router.post("/webconsole/server/{ident}")
def webconsole_server(ident: str, request: Request, session: SessionDep, cred: CredentialDep,
                      body: Any = AnyBody) -> Response:
    data = body.get("webconsole", body) if isinstance(body, dict) else {}
    if body is not None and not isinstance(body, dict):
        raise InputParameterError("body: expected a JSON object")
    protocol = str(data.get("protocol") or "vnc") if isinstance(data, dict) else "vnc"
    out = _issue(session, cred, request, ident, protocol)
    return json_response({"webconsole": {**out, "access_url": out["url"],
                                         "connect_params": f"token={out['token']}&server={out['server_id']}",
                                         "session": out["id"]}})


@router.post("/webconsole/baremetal/{ident}")
def webconsole_baremetal(ident: str, request: Request, session: SessionDep, cred: CredentialDep,
                         body: Any = AnyBody) -> Response:
    """Cloudpods' ``webconsole-baremetal HOST``: the machine's own serial console over its BMC (SOL),
    whether a server runs on it or not (RBAC: ``compute:hosts:perform``)."""
    from core.region.registry import get_manager

    begin_write(session)
    m = get_manager("hosts")
    host = m.fetch(session, cred, ident)
    m.enforce(cred, "perform", host)
    token, row = tokens.issue_machine(session, cred, host)
    out = _answer(session, request, row, token, f"baremetal/{host.id}/serial", host.id, host.name)
    out.update(host_id=host.id, host=host.name)
    return json_response({"webconsole": {**out, "access_url": out["url"],
                                         "connect_params": f"token={out['token']}&host={host.id}",
                                         "session": out["id"]}})


_NOVA_TYPES = {"vnc": ("novnc",), "serial": ("serial",)}


@router.post("/servers/{ident}/remote-consoles")
def nova_remote_console(ident: str, request: Request, session: SessionDep, cred: CredentialDep,
                        body: Any = AnyBody) -> Response:
    rc = body.get("remote_console") if isinstance(body, dict) else None
    if not isinstance(rc, dict):
        raise InputParameterError("remote_console: required ({\"protocol\": \"vnc\", \"type\": \"novnc\"})")
    protocol, kind = rc.get("protocol"), rc.get("type")
    if protocol not in _NOVA_TYPES:
        raise InputParameterError(f"remote_console.protocol: must be one of {', '.join(_NOVA_TYPES)}")
    if kind not in _NOVA_TYPES[str(protocol)]:
        raise InputParameterError(f"remote_console.type: {protocol} consoles are of type "
                                  f"{', '.join(_NOVA_TYPES[str(protocol)])}")
    out = _issue(session, cred, request, ident, str(protocol))
    return json_response({"remote_console": {"protocol": protocol, "type": kind, "url": out["url"]}})


# --- the page and noVNC's files ----------------------------------------------------------------

def novnc_dir() -> Path | None:
    for d in (os.environ.get("CLOUDPODS_NOVNC_DIR", ""), *NOVNC_DIRS):
        if d and (Path(d) / "core" / "rfb.js").is_file():
            return Path(d)
    return None


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>console</title>
<style>html,body{margin:0;height:100%;background:#222;color:#ddd;font:14px sans-serif}
#bar{padding:4px 8px}#screen{height:calc(100% - 28px)}</style></head>
<body><div id="bar">cloudpods-one console: <span id="status">connecting…</span></div><div id="screen"></div>
<script type="module">
import RFB from "./novnc/core/rfb.js";
const q = new URLSearchParams(location.hash.slice(1));
const status = document.getElementById("status");
const ws = (location.protocol === "https:" ? "wss://" : "ws://") + location.host +
  location.pathname.replace(/\\/vnc$/, "") + "/ws/server/" + encodeURIComponent(q.get("server") || "") + "/vnc";
history.replaceState(null, "", location.pathname);  // the one-time token leaves the address bar
const rfb = new RFB(document.getElementById("screen"), ws, {wsProtocols: ["binary", "cptoken." + q.get("token")]});
rfb.scaleViewport = true;
rfb.addEventListener("connect", () => { status.textContent = "connected"; document.title = "console (connected)"; });
rfb.addEventListener("disconnect", e => {
  status.textContent = e.detail.clean ? "disconnected" : "connection failed"; });
window.cpRFB = rfb;
</script></body></html>
"""


@router.get("/webconsole/vnc")
def vnc_page() -> Response:
    if novnc_dir() is None:
        raise ResourceNotFoundError("noVNC is not installed on this controller (apt install novnc, or set "
                                    "CLOUDPODS_NOVNC_DIR to a directory with noVNC's files)")
    return HTMLResponse(_PAGE, headers={"cache-control": "no-store", "referrer-policy": "no-referrer"})


@router.get("/webconsole/novnc/{path:path}")
def novnc_file(path: str) -> Response:
    root = novnc_dir()
    if root is None:
        raise ResourceNotFoundError("noVNC is not installed on this controller")
    target = (root / path).resolve()
    if not target.is_relative_to(root.resolve()) or not target.is_file():
        raise ResourceNotFoundError(f"no noVNC file {path}")
    media = "text/javascript" if target.suffix in (".js", ".mjs") else None
    return FileResponse(target, media_type=media)


# --- the websockets ----------------------------------------------------------------------------

def _ws_token(ws: WebSocket) -> tuple[str, str | None]:
    """The console token (header, subprotocol or query) and the subprotocol to answer with."""
    offered = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    token = ws.headers.get("x-console-token", "")
    for p in offered:
        if p.startswith(SUBPROTOCOL_PREFIX) and not token:
            token = p[len(SUBPROTOCOL_PREFIX):]
    token = token or ws.query_params.get("token", "")
    answer = "binary" if "binary" in offered else None
    return token, answer


async def ws_user(ws: WebSocket) -> Credential | None:
    """The caller's keystone identity if it sent one (climc does; a browser cannot)."""
    tok = ws.headers.get("x-auth-token")
    if not tok:
        return None
    cred = ws.app.state.auth.cached(tok)
    if cred is None:
        cred = await run_in_threadpool(credential_of_token, ws, tok)  # type: ignore[arg-type]
    return dataclasses.replace(cred, request_id="")


async def ws_deny(ws: WebSocket, err: CloudpodsError) -> None:
    """Refuse before the handshake: an HTTP answer in the API's error shape where the server can
    send one (uvicorn's websocket.http.response), else a close code 4000 + HTTP status."""
    try:
        await ws.send_denial_response(json_response(err.to_dict(), status=err.code))
    except RuntimeError:
        await ws.close(code=4000 + err.code, reason=err.details[:120])


@router.websocket("/webconsole/ws/server/{server_id}/{protocol}")
async def console_ws(ws: WebSocket, server_id: str, protocol: str) -> None:
    await _console(ws, server_id, protocol, "")


@router.websocket("/webconsole/ws/baremetal/{host_id}/serial")
async def baremetal_ws(ws: WebSocket, host_id: str) -> None:
    await _console(ws, "", "serial", host_id)


def _executor_host(s: Any, row: Any) -> tuple[str, str, str] | None:
    """(host id, driver, driver config) when the session's host runs in the controller's executor: then
    this replica carries the session itself (core/console/inprocess.py); None for an agent's host."""
    from core.region.hosted import TARGET_EXECUTOR
    from core.region.models import Host

    host = s.get(Host, row.host_id)
    if host is None or host.target != TARGET_EXECUTOR:
        return None
    row.status = "dispatched"  # no agent's long poll is to take it
    return host.id, host.driver or "", host.driver_config or ""


async def _console(ws: WebSocket, server_id: str, protocol: str, host_id: str) -> None:
    db = ws.app.state.db
    token, answer = _ws_token(ws)
    relay_url = ws.app.state.settings.console_relay_url
    p = None
    sid = ""
    local: list[tuple[str, str, str] | None] = [None]
    try:
        user = await ws_user(ws)

        def redeem() -> str:
            with db.session() as s:
                begin_write(s)
                row = tokens.redeem(s, token, server_id=server_id, protocol=protocol, user=user,
                                    relay_url=relay_url, host_id=host_id)
                local[0] = _executor_host(s, row)
                return row.id

        # a token is one lookup: find the session id first, so the relay waits before the agent is told
        sid = await run_in_threadpool(_peek, db, token)
        p = relay.expect(sid) if sid else None
        sid = await run_in_threadpool(redeem)
    except CloudpodsError as err:
        await ws_deny(ws, err)
        if p is not None:
            relay.forget(sid, p)
        return
    if p is None:  # redeemed although another connection waits with the same token: cannot happen
        await ws.close(code=1011)
        return
    await ws.accept(subprotocol=answer)
    if local[0] is not None:
        from core.console import inprocess

        inprocess.start(asyncio.get_running_loop(), {"id": sid, "server_id": server_id, "protocol": protocol},
                        *local[0])
    status, reason, endpoint = "failed", "", ""
    try:
        try:
            agent = await asyncio.wait_for(asyncio.shield(p.agent), relay.AGENT_WAIT_S)
        except TimeoutError:
            reason = f"the host agent did not connect within {relay.AGENT_WAIT_S:.0f} s"
            await ws.close(code=1011, reason=reason)
            return
        head = await relay.first_message(agent)
        if head.get("error"):
            reason = str(head["error"])
            await ws.close(code=1011, reason=reason[:120])
            await agent.close()
            return
        endpoint = str(head.get("endpoint") or "")
        await run_in_threadpool(_finish, db, sid, "open", "", endpoint, 0, 0)
        ended = await relay.pump(ws, agent, p)
        status, reason = "closed", f"closed by the {ended}"
    except (TimeoutError, OSError) as exc:
        reason = f"console relay failed: {exc}"
    finally:
        relay.forget(sid, p)
        await run_in_threadpool(_finish, db, sid, status, reason, endpoint, p.up, p.down)


def _peek(db: Any, token: str) -> str:
    from sqlalchemy import select

    from core.console.models import ConsoleSession

    if not token or len(token) > 256:
        return ""
    with db.session() as s:
        return s.scalar(select(ConsoleSession.id).where(ConsoleSession.token_sha256 == tokens.digest(token))) or ""


def _finish(db: Any, sid: str, status: str, reason: str, endpoint: str, up: int, down: int) -> None:
    with db.session() as s:
        begin_write(s)
        tokens.finish(s, sid, status=status, reason=reason, endpoint=endpoint, up=up, down=down)
