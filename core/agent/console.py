"""The agent's side of a console session: dial OUT to the controller, attach to the guest's console.

    bridge = ConsoleBridge(hosted, link)
    bridge.serve({"id": sid, "server_id": ..., "protocol": "vnc", "relay_url": ""})   # in its own thread

The long poll tells the agent a session was opened (``consoles`` in the work-items answer); the
agent asks its driver where the guest's console listens (``drivers.base.Consoles``), dials a
websocket to the controller (hosts need no inbound port), sends one JSON header
(``{"endpoint": ...}`` or ``{"error": ...}``) and then copies bytes both ways: websocket frames
to the guest's VNC socket or serial pty, and back, until either side closes.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import threading
from typing import Any

from core.errors import CloudpodsError
from drivers.base import ConsoleEndpoint, Consoles, DriverError

log = logging.getLogger("cloudpods.agent.console")
CHUNK = 256 * 1024


class _Guest:
    """The guest's end: a TCP socket (VNC, or a serial port on TCP), a pty (serial), or a stream the
    driver opened itself (a machine's serial-over-LAN through its BMC)."""

    def __init__(self, ep: ConsoleEndpoint) -> None:
        self.sock: socket.socket | None = None
        self.fd = -1
        self._closed = threading.Event()
        self._wake_r = self._wake_w = -1
        self.stream = ep.stream
        if self.stream is not None:
            return
        if ep.path:
            self._wake_r, self._wake_w = os.pipe()  # close() wakes a reader blocked on the pty at once
            import tty

            self.fd = os.open(ep.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(self.fd)  # bytes as they are: no echo, no line editing, no CR/LF mangling
        else:
            self.sock = socket.create_connection((ep.host, ep.port), timeout=10)
            self.sock.settimeout(None)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read(self) -> bytes:
        if self.stream is not None:
            return self.stream.read()
        if self.sock is not None:
            return self.sock.recv(CHUNK)
        while not self._closed.is_set():
            r, _, _ = select.select([self.fd, self._wake_r], [], [], 5.0)
            if self._closed.is_set():
                break
            if r:
                try:
                    return os.read(self.fd, CHUNK)
                except BlockingIOError:
                    continue
                except OSError:  # EIO: the guest side (qemu) closed the pty
                    return b""
        return b""

    def write(self, data: bytes) -> None:
        if self.stream is not None:
            self.stream.write(data)
            return
        if self.sock is not None:
            self.sock.sendall(data)
            return
        view = memoryview(data)
        while view and not self._closed.is_set():
            try:
                n = os.write(self.fd, view)
                view = view[n:]
            except BlockingIOError:
                select.select([], [self.fd], [], 0.5)

    def close(self) -> None:
        """Stop both directions now; the descriptors go in ``release`` (after both threads ended:
        an fd closed under a thread could be reused by the next session's pty and read by it)."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self.stream is not None:
            self.stream.close()
        elif self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
        elif self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def release(self) -> None:
        self.close()
        if self.sock is not None:
            self.sock.close()
        for fd in (self.fd, self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fd = self._wake_r = self._wake_w = -1


def describe(ep: ConsoleEndpoint) -> str:
    where = ep.where or ep.path or f"{ep.host}:{ep.port}"
    return f"{ep.protocol} at {where}" + (" (test stand-in)" if ep.standin else "")


class ConsoleBridge:
    def __init__(self, hosted: Any, link: Any) -> None:
        self.hosted = hosted
        self.link = link
        self.active = 0  # sessions being served (tests, bench)
        # one attachment per serial console, as `virsh console --force`: a new session takes the
        # pty over and the older one ends (two readers of one pty would each get half the bytes)
        self._serial: dict[str, _Guest] = {}
        self._lock = threading.Lock()

    def serve(self, session: dict[str, Any]) -> None:
        sid = str(session.get("id"))
        guest: _Guest | None = None
        head: dict[str, Any]
        try:
            if not isinstance(self.hosted, Consoles):
                raise DriverError(f"driver {self.hosted.name} has no consoles")
            ep = self.hosted.console(str(session.get("server_id")), str(session.get("protocol")))
            if ep.path:
                with self._lock:
                    old = self._serial.pop(ep.path, None)
                if old is not None:
                    log.info("console session %s takes over %s from an older session", sid, ep.path)
                    old.close()
            guest = _Guest(ep)
            if ep.path:
                with self._lock:
                    self._serial[ep.path] = guest
            head = {"endpoint": describe(ep)}
        except (DriverError, OSError) as exc:
            of = session.get("server_id") or "the machine"  # "" = a bare-metal machine's own console
            head = {"error": f"{session.get('protocol')} console of {of}: {exc}"}
        try:
            ws = self.link.console_socket(sid, str(session.get("relay_url") or ""))
        except CloudpodsError as exc:
            log.warning("console session %s: cannot reach the controller: %s", sid, exc)
            if guest is not None:
                guest.release()
            return
        self.active += 1
        try:
            ws.send(json.dumps(head))
            if guest is None:
                log.warning("console session %s refused: %s", sid, head["error"])
                return
            log.info("console session %s: %s", sid, head["endpoint"])
            _bridge(ws, guest)
        finally:
            self.active -= 1
            if guest is not None:
                guest.release()  # _bridge returned: its threads are done with the descriptors
                with self._lock:
                    for path, g in list(self._serial.items()):
                        if g is guest:
                            del self._serial[path]
            with contextlib.suppress(Exception):
                ws.close()


def _bridge(ws: Any, guest: _Guest) -> None:
    """Client bytes (websocket) → guest in a helper thread; guest bytes → websocket here."""
    from websockets.exceptions import ConnectionClosed

    def up() -> None:
        try:
            for msg in ws:
                guest.write(msg if isinstance(msg, bytes) else msg.encode())
        except (ConnectionClosed, OSError):
            pass
        finally:
            guest.close()  # the client went: let go of the guest's console

    t = threading.Thread(target=up, name="console-up", daemon=True)
    t.start()
    try:
        while data := guest.read():
            ws.send(data)
    except (ConnectionClosed, OSError):
        pass
    finally:
        guest.close()
        with contextlib.suppress(Exception):
            ws.close()
        t.join(5)
