"""Consoles of a real guest (libvirtd + qemu, the tiny kernel of scripts/setup-virt.sh), through
the controller's websocket relay and the agent's outbound connection, driven by climc:

- VNC: qemu's own VNC server (password-less, on 127.0.0.1) answers the RFB handshake and sends a
  framebuffer update through the proxy;
- a browser: headless Chromium loads the console page (noVNC) and its canvas shows the screen;
- serial: ``climc server-console`` in a terminal sees the guest's tty echo what it types, then,
  after a hard reset, the guest's boot marker; the serial log keeps recording meanwhile.
"""
from __future__ import annotations

import json
import os
import struct
import time
from pathlib import Path
from typing import Any

from tests.e2e.test_agent_support import AgentProc, B, wait_for
from tests.integration import test_agent_real
from tests.integration.test_agent_real import running_guest, upload_tiny_guest
from tests.support import chromium
from tests.support.controller import Controller
from tests.support.peers import need
from tests.support.pty import climc_in_terminal

# true once noVNC's canvas holds a pixel that is not black (the guest's screen arrived)
NONBLANK = """(() => { const c = document.querySelector('#screen canvas');
  if (!c || !c.width || !c.height) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 0; i < d.length; i += 4) { if (d[i] | d[i + 1] | d[i + 2]) return true; }
  return false; })()"""
real_cloud = test_agent_real.real_cloud  # the fixture: a controller and a real agent on qemu:///system


def _recv_exactly(ws: Any, n: int, buf: bytearray) -> bytes:
    while len(buf) < n:
        buf += ws.recv(timeout=60)
    out = bytes(buf[:n])
    del buf[:n]
    return out


def test_vnc_and_serial_console_of_a_real_guest_through_the_proxy(
        real_cloud: tuple[Controller, AgentProc], tmp_path: Path) -> None:
    import libvirt
    from websockets.sync.client import connect

    ctl, agent = real_cloud
    host = ctl.api.get(f"{B}/hosts/{agent.host_id}").json()["host"]
    assert {"vnc", "serial_console"} <= set(host["capabilities"]), host["capabilities"]
    upload_tiny_guest(ctl, tmp_path, "cm-con", "console=ttyS0 panic=-1 cm.stay")
    sid = running_guest(ctl, agent, "convm", "cm-con")["id"]
    log = agent.data / "instances" / sid / "serial.log"
    wait_for(lambda: log.exists() and "CM-MARKER: staying up" in log.read_text(errors="replace"), 150,
             "the guest up (its serial log, now a pty's log)")
    conn = libvirt.open("qemu:///system")
    try:
        xml = conn.lookupByUUIDString(sid).XMLDesc(0)
    finally:
        conn.close()
    assert "<graphics type='vnc'" in xml and "listen='127.0.0.1'" in xml and "passwd" not in xml, xml

    # VNC: qemu's RFB server, through controller and agent
    info = json.loads(ctl.climc("server-vnc", "convm", "-o", "json").stdout)
    t0 = time.monotonic()
    ws = connect(info["websocket_url"], subprotocols=["binary", f"cptoken.{info['token']}"],  # type: ignore[list-item]
                 open_timeout=60, compression=None, max_size=None).__enter__()
    buf = bytearray()
    try:
        assert _recv_exactly(ws, 12, buf) == b"RFB 003.008\n"
        print(f"token -> first RFB byte from a real guest: {(time.monotonic() - t0) * 1000:.0f} ms")
        ws.send(b"RFB 003.008\n")
        types = _recv_exactly(ws, _recv_exactly(ws, 1, buf)[0], buf)
        assert 1 in types
        ws.send(b"\x01")
        assert _recv_exactly(ws, 4, buf) == b"\0\0\0\0"
        ws.send(b"\x01")
        w, h = struct.unpack(">HH", _recv_exactly(ws, 4, buf))
        _recv_exactly(ws, 16, buf)
        _recv_exactly(ws, struct.unpack(">I", _recv_exactly(ws, 4, buf))[0], buf)
        assert w >= 320 and h >= 200, (w, h)
        ws.send(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))
        assert _recv_exactly(ws, 1, buf) == b"\0"  # FramebufferUpdate
        nrects = struct.unpack(">xH", _recv_exactly(ws, 3, buf))[0]
        assert nrects >= 1
    finally:
        ws.close()

    # a browser: headless Chromium opens the URL climc prints; noVNC (served by the controller from its
    # Debian package) connects through the proxy and draws the guest's screen into its canvas
    need(chromium.binary() is not None, "chromium missing: apt install chromium (scripts/setup-peers.d/console.sh)")
    need(os.path.exists("/usr/share/novnc/core/rfb.js"), "noVNC missing: apt install novnc")
    url = ctl.climc("server-vnc", "convm").stdout.strip()
    with chromium.Chromium(tmp_path) as browser:
        browser.navigate(url)
        browser.wait_for("document.title", "console (connected)", 90)
        browser.wait_for(NONBLANK, True, 90)
        shot = browser.screenshot()
        (tmp_path / "console.png").write_bytes(shot)
        assert shot[:8] == b"\x89PNG\r\n\x1a\n"
        assert browser.evaluate("location.href").endswith("/webconsole/vnc")  # the token left the address bar

    # serial: climc in a terminal; the guest's tty echoes, and a reset shows its boot through the console
    with climc_in_terminal(ctl.env, "server-console", "convm") as term:
        term.until(b"escape character is ^]", 60)
        term.type(b"cm-probe-42")
        term.until(b"cm-probe-42", 60)  # echoed by the guest kernel's tty, not by ours (raw mode)
        assert ctl.climc("server-reset", "convm").returncode == 0
        term.until(b"CM-MARKER: guest userspace up", 180)
        term.type(b"\x1d")
        assert term.proc.wait(30) == 0
    acts = ctl.api.get("/api/s/identity/v3/actions", params={"limit": 200}).json()["actions"]
    assert {"console-open-vnc", "console-open-serial"} <= {a["action"] for a in acts if a["obj_id"] == sid}
    assert ctl.climc("server-delete", "-f", "convm").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{sid}").status_code == 404, 60, "deleted")
