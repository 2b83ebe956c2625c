"""Consoles with two controller replicas behind a balancer (PostgreSQL): a console session lives on
the replica the client's websocket reached; each replica advertises its own address
(``console_relay_url``, CLOUDPODS_CONSOLE_RELAY_URL) and the session names it, so the agent —
whose long poll went through the balancer to either replica — dials the one holding the session.

The guest's VNC is a real qemu VNC server standing in for a test:/// guest's (as in
tests/integration/test_console.py).
"""
from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

from tests.e2e.test_agent_support import AgentProc, libvirt_or_skip, server, upload_tiny_image, wait_for
from tests.integration.test_console import _free_vnc_display, _ws
from tests.integration.test_scale_support import FAST_ENV, need_db
from tests.support.balancer import Balancer
from tests.support.controller import Controller, free_port
from tests.support.peers import need_binary


def test_sessions_on_either_replica_reach_the_guest(tmp_path: Path) -> None:
    from sqlalchemy import select

    from core.console.models import ConsoleSession
    from core.db.engine import Database

    libvirt_or_skip()
    need_db("pg")
    need_binary("qemu-system-x86_64", "qemu-system-x86")
    display = _free_vnc_display()
    qemu = subprocess.Popen(["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
                             "-vnc", f"127.0.0.1:{display}", "-monitor", "none", "-serial", "none"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lb_port = free_port()
    first = Controller.init(tmp_path / "ctl", port=lb_port, db="pg")
    first.env.update(FAST_ENV)
    reps = [first.replica(name=f"replica-{i}") for i in range(2)]
    for r in reps:
        r.env["CLOUDPODS_CONSOLE_RELAY_URL"] = r.url  # each replica its own address
    lb = Balancer([r.port for r in reps], port=lb_port).start()
    agent = None
    try:
        threads = [threading.Thread(target=r.serve, kwargs={"timeout": 60}) for r in reps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        agent = AgentProc.join(first, tmp_path / "node", "rnode",
                               settings={"console_standin": {"vnc": f"127.0.0.1:{5900 + display}"}})
        agent.start()
        upload_tiny_image(first)
        r = first.climc("server-create", "rweb", "--disk", "tiny", "--net", "default", "--auto-start", "-o", "json")
        assert r.returncode == 0, r.stderr
        sid = json.loads(r.stdout)["id"]
        wait_for(lambda: server(first, sid)["status"] == "running", 60, "running")
        for i in (0, 1, 0, 1):  # the client's websocket to each replica in turn (the token from either)
            info = json.loads(first.climc("server-vnc", sid, "-o", "json").stdout)
            ws = _ws(info["websocket_url"].replace(f":{lb_port}/", f":{reps[i].port}/"), info["token"])
            try:
                assert ws.recv(timeout=30)[:12] == b"RFB 003.008\n"
            finally:
                ws.close()
        db = Database(first.db_url)
        try:
            with db.session() as s:
                relays = set(s.scalars(select(ConsoleSession.relay_url).where(ConsoleSession.server_id == sid)))
        finally:
            db.dispose()
        assert relays == {r.url for r in reps}, relays
    finally:
        if agent is not None:
            agent.stop()
        for r in reps:
            r.stop()
        lb.stop()
        qemu.kill()
        qemu.wait(10)
