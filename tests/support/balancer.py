"""A TCP load balancer for tests: round robin over controller replicas, skipping dead ones.

    lb = Balancer([8001, 8002, 8003]).start()    # listens on lb.port (127.0.0.1)
    ...
    lb.stop()

It stands for the load balancer an operator puts in front of N ``ocadm serve`` replicas: the
keystone catalog names its address (``ocadm init --port <lb port>``), so climc, agents and every
client following the catalog reach *some* replica. Each accepted connection goes to the next
backend that accepts a TCP connection; a replica killed mid-connection resets that connection
(as a real L4 balancer would), and clients retry. Plain asyncio in a thread: no peer to install.

``lb.on_reply = fn`` sees each block a replica answers with (``fn(backend_port, block)``, in the
balancer's thread) before it is passed on; when it returns True the block is dropped and the client's
connection reset: with ``fn`` SIGKILLing that replica, the replica dies after its commit and before
its reply reaches the client (tests/integration/test_scale.py).
"""
from __future__ import annotations

import asyncio
import itertools
import socket
import threading
from collections.abc import Callable, Sequence

CONNECT_S = 30.0  # how long a backend may take to accept a connection before the next one is tried


class Balancer:
    def __init__(self, backends: Sequence[int], port: int = 0, host: str = "127.0.0.1") -> None:
        self.backends = list(backends)
        self.host = host
        self._want_port = port
        self.port = 0
        self.connections: dict[int, int] = {p: 0 for p in self.backends}  # backend port -> connections made
        self.refused = 0  # client connections closed because no backend took them (all down, or too slow)
        self._rr = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_reply: Callable[[int, bytes], bool] | None = None

    def start(self) -> Balancer:
        if self._want_port == 0:
            with socket.socket() as s:
                s.bind((self.host, 0))
                self._want_port = int(s.getsockname()[1])
        self._thread = threading.Thread(target=self._run, name="test-balancer", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("balancer did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        self._server = loop.run_until_complete(asyncio.start_server(self._handle, self.host, self._want_port,
                                                                    reuse_address=True, backlog=1024))
        self.port = self._want_port
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            loop.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int] | None:
        n = len(self.backends)
        start = next(self._rr)
        for i in range(n):
            port = self.backends[(start + i) % n]
            try:
                # a dead replica refuses at once; the bound is for one that does not answer at all.
                # It was 2 s: with the balancer's thread starved in a loaded test process (200 create
                # threads beside it), live replicas missed it and agents' image downloads broke off
                r, w = await asyncio.wait_for(asyncio.open_connection(self.host, port), CONNECT_S)
            except (TimeoutError, OSError):
                continue
            self.connections[port] = self.connections.get(port, 0) + 1
            return r, w, port
        return None

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        up = await self._connect()
        if up is None:  # every replica down: refuse like a dead balancer would (connection reset)
            self.refused += 1
            cw.close()
            return
        ur, uw, port = up

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, watch: bool = False) -> None:
            try:
                while data := await r.read(65536):
                    hook = self.on_reply if watch else None
                    if hook is not None and hook(port, data):
                        w.transport.abort()  # the client sees its connection reset, never this block
                        return
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                try:
                    w.close()
                except Exception:
                    pass

        await asyncio.gather(pipe(cr, uw), pipe(ur, cw, watch=True))
