"""Server consoles end to end through climc: a controller, a real agent on libvirt's test:/// driver.
In the integration tier (run once per CI, not on every database) because its VNC peer is a real
qemu; tests/integration/test_console_real.py does the same with a real guest under libvirtd.

A test:/// guest has no console devices, so the agent is configured with STAND-INS for its
guests' consoles (``console_standin``, refused on a real host):

- VNC: a real qemu (``-machine none``) whose VNC server speaks RFB — the real peer, not a mock;
- serial: a pty whose other end this test holds, answering in upper case (a labelled stand-in
  for the guest's ttyS0; the real-tier test uses a real guest's).

Everything between them is the product: one-time tokens, the websocket relay in the controller,
the agent's outbound websocket and its attachment to the console.
"""
from __future__ import annotations

import json
import os
import select
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_agent_support import AgentProc, B, libvirt_or_skip, server, upload_tiny_image, wait_for
from tests.e2e.test_identity_support import admin, grant, login, mk_project, mk_user
from tests.support.controller import Controller
from tests.support.peers import need_binary
from tests.support.pty import climc_in_terminal

pytestmark = pytest.mark.full


def _free_vnc_display() -> int:
    for n in range(40, 99):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 5900 + n))
                return n
            except OSError:
                continue
    raise AssertionError("no free VNC display")


class SerialStandin:
    """The guest end of a pty: answers every chunk it reads in upper case (stand-in for a guest)."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.seen = bytearray()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.2)
            if r:
                try:
                    data = os.read(self.master, 4096)
                    self.seen += data
                    os.write(self.master, data.upper())
                except OSError:
                    continue

    def close(self) -> None:
        self._stop.set()
        self._t.join(5)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    libvirt_or_skip()
    need_binary("qemu-system-x86_64", "qemu-system-x86")
    root = tmp_path_factory.mktemp("console")
    display = _free_vnc_display()
    qemu = subprocess.Popen(["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
                             "-vnc", f"127.0.0.1:{display}", "-monitor", "none", "-serial", "none"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    serial = SerialStandin()
    ctl = Controller.init(root / "ctl")
    agent = None
    try:
        ctl.serve()
        agent = AgentProc.join(ctl, root / "node", "cnode", settings={"console_standin": {
            "vnc": f"127.0.0.1:{5900 + display}", "serial": serial.path}})
        agent.start()
        upload_tiny_image(ctl)
        r = ctl.climc("server-create", "cweb", "--disk", "tiny", "--net", "default", "--auto-start", "-o", "json")
        assert r.returncode == 0, r.stderr
        sid = json.loads(r.stdout)["id"]
        wait_for(lambda: server(ctl, sid)["status"] == "running", 60, "server running")
        yield {"ctl": ctl, "agent": agent, "server": sid, "serial": serial, "qemu": qemu}
    finally:
        if agent is not None:
            agent.stop()
        ctl.stop()
        qemu.kill()
        qemu.wait(10)
        serial.close()


def _ws(url: str, token: str | None = None, auth: str | None = None) -> Any:
    from websockets.sync.client import connect

    protos = ["binary"] + ([f"cptoken.{token}"] if token else [])
    headers = {"X-Auth-Token": auth} if auth else {}
    return connect(url, subprotocols=protos, additional_headers=headers, open_timeout=30,  # type: ignore[arg-type]
                   compression=None, max_size=None).__enter__()


def _refused(url: str, token: str, auth: str | None = None) -> tuple[int, str]:
    from websockets.exceptions import InvalidStatus

    try:
        ws = _ws(url, token, auth)
    except InvalidStatus as e:
        return e.response.status_code, (e.response.body or b"").decode()
    ws.close()
    raise AssertionError(f"{url} accepted a token it should refuse")


def _recv_exactly(ws: Any, n: int, buf: bytearray) -> bytes:
    while len(buf) < n:
        buf += ws.recv(timeout=30)
    out = bytes(buf[:n])
    del buf[:n]
    return out


def _vnc(ctl: Controller, ident: str) -> dict[str, Any]:
    r = ctl.climc("server-vnc", ident, "-o", "json")
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def test_server_vnc_url_reaches_the_guest_rfb_server_through_the_agent(cloud: dict[str, Any]) -> None:
    ctl, sid = cloud["ctl"], cloud["server"]
    url = ctl.climc("server-vnc", "cweb")
    assert url.returncode == 0, url.stderr
    assert url.stdout.strip().startswith(f"{ctl.url}{B}/webconsole/vnc#server={sid}&token="), url.stdout
    info = _vnc(ctl, sid)
    assert info["protocol"] == "vnc" and info["ttl_s"] == 600 and info["server_id"] == sid
    t0 = time.monotonic()
    ws = _ws(info["websocket_url"], info["token"])
    buf = bytearray()
    try:
        assert _recv_exactly(ws, 12, buf) == b"RFB 003.008\n"  # qemu's ProtocolVersion, via agent and controller
        first_byte_ms = (time.monotonic() - t0) * 1000
        ws.send(b"RFB 003.008\n")
        n = _recv_exactly(ws, 1, buf)[0]
        types = _recv_exactly(ws, n, buf)
        assert 1 in types  # security type None: the VNC server has no password, the token guards it
        ws.send(b"\x01")
        assert _recv_exactly(ws, 4, buf) == b"\0\0\0\0"  # SecurityResult OK
        ws.send(b"\x01")  # ClientInit, shared
        w, h = struct.unpack(">HH", _recv_exactly(ws, 4, buf))
        _recv_exactly(ws, 16, buf)  # pixel format
        name = _recv_exactly(ws, struct.unpack(">I", _recv_exactly(ws, 4, buf))[0], buf)
        assert (w, h) == (640, 480) and name == b"QEMU", (w, h, name)
        ws.send(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))  # FramebufferUpdateRequest, full
        assert _recv_exactly(ws, 1, buf) == b"\0"  # FramebufferUpdate
    finally:
        ws.close()
    print(f"token -> first RFB byte: {first_byte_ms:.0f} ms")
    # the session and its end are audit records; the session row knows where the agent attached
    wait_for(lambda: any(a["action"] == "console-close-vnc" and a["obj_id"] == sid
                         for a in ctl.api.get("/api/s/identity/v3/actions", params={"limit": 200})
                         .json().get("actions", [])) or None, 60, "console-close audit")
    acts = ctl.api.get("/api/s/identity/v3/actions", params={"limit": 200}).json()["actions"]
    done = {a["action"] for a in acts if a["obj_id"] == sid}
    assert {"console-token-vnc", "console-open-vnc", "console-close-vnc"} <= done, done
    close = next(a for a in acts if a["action"] == "console-close-vnc" and a["obj_id"] == sid)
    assert close["success"] and "bytes up" in close["notes"], close
    assert info["token"] not in json.dumps(acts)  # the token is in no audit record


def test_console_tokens_are_refused_reused_expired_elsewhere_or_for_another_user(cloud: dict[str, Any]) -> None:
    from sqlalchemy import update

    from core.console.models import ConsoleSession
    from core.db.base import utcnow
    from core.db.engine import Database

    ctl, sid = cloud["ctl"], cloud["server"]
    # used once: refused the second time
    info = _vnc(ctl, sid)
    ws = _ws(info["websocket_url"], info["token"])
    assert ws.recv(timeout=30)[:4] == b"RFB "
    ws.close()
    code, body = _refused(info["websocket_url"], info["token"])
    assert code == 401 and "already used" in body, body
    # unknown
    assert _refused(info["websocket_url"], "not-a-token")[0] == 401
    # for another server (the URL of a server that does not match the token)
    info = _vnc(ctl, sid)
    other = info["websocket_url"].replace(sid, "00000000-0000-4000-8000-000000000000")
    code, body = _refused(other, info["token"])
    assert code == 403 and "another server" in body, body
    # for another protocol
    info = _vnc(ctl, sid)
    code, body = _refused(info["websocket_url"].replace("/vnc", "/serial"), info["token"])
    assert code == 403, body
    # another user's token (that user may open consoles of this server too, but not with this token)
    api = admin(ctl)
    u = mk_user(api)
    system = api.get("/projects", params={"name": "system"}).json()["projects"][0]
    grant(api, f"projects/{system['id']}", u["id"], "member")
    tok_u = login(ctl, u["name"], "pw-Secret-1", {"project": {"name": "system", "domain": {"name": "Default"}}})
    info = _vnc(ctl, sid)
    code, body = _refused(info["websocket_url"], info["token"], auth=tok_u)
    assert code == 403 and "another user" in body, body
    # after its TTL
    info = _vnc(ctl, sid)
    db = Database(ctl.db_url)
    try:
        with db.session() as s:
            s.execute(update(ConsoleSession).where(ConsoleSession.status == "issued").values(expires_at=utcnow()))
            s.commit()
    finally:
        db.dispose()
    code, body = _refused(info["websocket_url"], info["token"])
    assert code == 401 and "expired" in body, body
    # nothing stored holds a token: only its sha256
    db = Database(ctl.db_url)
    try:
        with db.session() as s:
            from sqlalchemy import select

            hashes = set(s.scalars(select(ConsoleSession.token_sha256)))
    finally:
        db.dispose()
    assert info["token"] not in hashes and all(len(h) == 64 for h in hashes)


def test_console_access_needs_perform_rights_and_stays_in_the_tenant(cloud: dict[str, Any]) -> None:
    import httpx

    ctl, sid = cloud["ctl"], cloud["server"]
    api = admin(ctl)
    system = api.get("/projects", params={"name": "system"}).json()["projects"][0]
    reader, stranger = mk_user(api), mk_user(api)
    grant(api, f"projects/{system['id']}", reader["id"], "reader")
    other = mk_project(api)
    grant(api, f"projects/{other['id']}", stranger["id"], "member")
    t_reader = login(ctl, reader["name"], "pw-Secret-1", {"project": {"name": "system", "domain": {"name": "Default"}}})
    t_stranger = login(ctl, stranger["name"], "pw-Secret-1", {"project": {"id": other["id"]}})
    for tok, want in ((t_reader, 403), (t_stranger, 404)):
        h = {"X-Auth-Token": tok}
        assert httpx.get(f"{ctl.url}{B}/servers/{sid}/vnc", headers=h, timeout=30).status_code == want
        assert httpx.post(f"{ctl.url}{B}/webconsole/server/{sid}", json={"protocol": "serial"}, headers=h,
                          timeout=30).status_code == want
        assert httpx.post(f"{ctl.url}{B}/servers/{sid}/remote-consoles", headers=h, timeout=30,
                          json={"remote_console": {"protocol": "vnc", "type": "novnc"}}).status_code == want
    # climc as the stranger: one line, exit 3 (not found)
    env = {**ctl.env, "OS_USERNAME": stranger["name"], "OS_PASSWORD": "pw-Secret-1", "OS_PROJECT_NAME": other["name"]}
    r = ctl.climc("server-vnc", sid, env=env)
    assert r.returncode == 3 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    # bad input: 400 in the documented shape
    r2 = ctl.api.post(f"{B}/servers/{sid}/remote-consoles", json={"remote_console": {"protocol": "rdp", "type": "x"}})
    assert r2.status_code == 400 and "protocol" in r2.json()["details"]
    r3 = ctl.api.post(f"{B}/webconsole/server/{sid}", json={"protocol": "spice"})
    assert r3.status_code == 400
    # Nova's shape and Cloudpods' webconsole shape
    nova = ctl.api.post(f"{B}/servers/{sid}/remote-consoles",
                        json={"remote_console": {"protocol": "vnc", "type": "novnc"}}).json()["remote_console"]
    assert nova["protocol"] == "vnc" and nova["type"] == "novnc" and "#server=" in nova["url"]
    wc = ctl.api.post(f"{B}/webconsole/server/{sid}", json={"protocol": "vnc"}).json()["webconsole"]
    assert wc["access_url"].startswith(ctl.url) and wc["connect_params"].startswith("token=")


def test_server_console_attaches_the_terminal_to_the_serial_console(cloud: dict[str, Any]) -> None:
    """climc in a real terminal (a pty): raw mode, bytes to the guest's serial port and back, Ctrl-] leaves."""
    ctl, serial = cloud["ctl"], cloud["serial"]
    with climc_in_terminal(ctl.env, "server-console", "cweb") as term:
        term.until(b"escape character is ^]", 30)
        term.type(b"hello console\r")
        term.until(b"HELLO CONSOLE\r", 30)  # the stand-in guest's answer, through agent and controller
        assert b"hello console\r" in serial.seen  # raw: a CR stays a CR, nothing echoed locally
        assert b"hello console" not in term.out.replace(b"HELLO CONSOLE", b"")
        term.type(b"\x1d")  # Ctrl-]
        assert term.proc.wait(30) == 0


def test_a_stopped_server_or_a_host_without_consoles_gets_a_clear_400(cloud: dict[str, Any]) -> None:
    ctl = cloud["ctl"]
    r = ctl.climc("server-create", "cstop", "--disk", "tiny", "--net", "default", "-o", "json")
    assert r.returncode == 0, r.stderr
    sid = json.loads(r.stdout)["id"]
    wait_for(lambda: server(ctl, sid)["status"] == "ready", 60, "server ready")
    r = ctl.climc("server-vnc", sid)
    assert r.returncode != 0 and "start it" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert ctl.climc("server-delete", "-f", sid).returncode == 0


def test_the_console_page_serves_novnc_from_its_package_without_a_cdn(cloud: dict[str, Any]) -> None:
    import httpx

    from tests.support.peers import need

    need(os.path.exists("/usr/share/novnc/core/rfb.js"), "noVNC missing: apt install novnc "
         "(scripts/setup-peers.d/console.sh)")
    ctl = cloud["ctl"]
    url = ctl.climc("server-vnc", "cweb").stdout.strip()
    page = httpx.get(url, timeout=30)  # the fragment (#server=…&token=…) never leaves the client
    assert page.status_code == 200 and 'from "./novnc/core/rfb.js"' in page.text
    import re

    imports = re.findall(r'from "([^"]+)"', page.text)
    assert imports and all(i.startswith("./") for i in imports) and " src=" not in page.text  # no CDN
    rfb = httpx.get(f"{ctl.url}{B}/webconsole/novnc/core/rfb.js", timeout=30)
    assert rfb.status_code == 200 and "javascript" in rfb.headers["content-type"] and "class RFB" in rfb.text
    for bad in ("../../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "core/nope.js"):
        assert httpx.get(f"{ctl.url}{B}/webconsole/novnc/{bad}", timeout=30).status_code == 404, bad


def test_a_second_serial_session_takes_the_console_over(cloud: dict[str, Any]) -> None:
    """One reader per pty, as `virsh console --force`: the newer session gets the bytes, the older ends."""
    from websockets.exceptions import ConnectionClosed

    ctl, sid = cloud["ctl"], cloud["server"]

    def session() -> Any:
        info = ctl.api.post(f"{B}/webconsole/server/{sid}", json={"protocol": "serial"}).json()["webconsole"]
        return _ws(info["websocket_url"], info["token"])

    def answer(ws: Any, want: bytes) -> None:
        got = b""
        while want not in got:
            got += ws.recv(timeout=30)

    first = session()
    first.send(b"one")
    answer(first, b"ONE")
    second = session()
    second.send(b"two")
    answer(second, b"TWO")
    with pytest.raises((ConnectionClosed, TimeoutError)):
        while True:  # the first session was ended by the agent
            first.recv(timeout=30)
    second.close()
    first.close()
