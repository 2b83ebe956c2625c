"""Serial-over-LAN of an IPMI BMC (``IpmiBmc.sol``), on pyghmi's ``Console``.

At most one SOL session per BMC in this process: a machine has one serial port. A new session ends
the previous one first, waits for its logout, and goes on from its sequence numbers (see
``SolStream.open``).
"""
from __future__ import annotations

import queue
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from drivers.baremetal.common import BmcConfig, pyghmi
from drivers.base import BmcError

if TYPE_CHECKING:
    from drivers.baremetal.ipmi import IpmiBmc

_SOL: dict[str, SolStream] = {}  # the open SOL session of each BMC in this process
_SEQ: dict[str, int] = {}  # the last SOL sequence number each BMC saw from this process
_SOL_LOCK = threading.Lock()
_ENDING: dict[str, threading.Event] = {}  # each BMC's last SOL logout (set when done): the next activation waits


def _drop_sol_sessions(cfg: BmcConfig) -> None:
    """Forget every pyghmi session under this BMC's SOL key (Kg = password, see ``SolStream``): only a
    SolStream uses that key and at most one is open per BMC, so any such session is a leftover that
    pyghmi would otherwise hand to the next Console (which then waits for a login that never comes)."""
    from pyghmi.ipmi.private import session

    sess_cls = session.Session
    sess_cls.initting_sessions.pop((cfg.host, cfg.username, cfg.password, cfg.port, cfg.password), None)
    for ports in list(sess_cls.bmc_handlers.values()):
        for port, sess in list(ports.items()):
            if getattr(sess, "bmc", None) == cfg.host and getattr(sess, "port", None) == cfg.port \
                    and getattr(sess, "userid", None) in (cfg.username.encode(), cfg.username) \
                    and getattr(sess, "kgo", None) == cfg.password:
                ports.pop(port, None)
                sess_cls.keepalive_sessions.pop(sess, None)


def _end_console(con: Any, wait_s: float, done: threading.Event | None = None) -> None:
    """Deactivate a pyghmi Console's payload and log its session out, in a thread of its own (a BMC that
    went away must not hold the caller longer than ``wait_s``); ``done`` is set when it has ended."""
    sess = con.ipmi_session

    def bye() -> None:
        try:
            con.close()
            if sess is not None:
                sess.logout()
        except Exception:  # a session already gone has nothing to end
            pass
        finally:
            if done is not None:
                done.set()

    t = threading.Thread(target=bye, name="sol-close", daemon=True)
    t.start()
    t.join(wait_s)


class SolStream:
    """Serial-over-LAN through pyghmi's ``Console`` (``drivers.base.ConsoleStream``).

    It gets its own IPMI session: pyghmi shares one session per (BMC, user, password, port, Kg), and
    power or sensor calls on a session that also carries SOL hung until our deadline. Passing the
    password as Kg keys the session the same way as "no Kg" (IPMI 2.0 uses the user's key when the
    BMC has none) but gives it a key of its own in pyghmi. ``force``: a session left active on the
    BMC (a client that vanished) is taken over, as ``virsh console --force`` does.
    pyghmi delivers SOL bytes only while someone runs its event loop: a pump thread does, until close."""

    def __init__(self, bmc: IpmiBmc) -> None:
        self.bmc = bmc
        self.where = f"SOL of BMC {bmc.address}"
        self._q: queue.Queue[bytes | None] = queue.Queue()
        self._closed = threading.Event()
        self._con: Any = None
        self.error = ""

    def _got(self, data: Any) -> None:
        if isinstance(data, dict):
            if "error" in data:  # pyghmi ends the session: say why to whoever reads
                self.error = str(data["error"])
                self._q.put(None)
            return  # {"info": "Remote system is powered down"} and the like: not console bytes
        self._q.put(data if isinstance(data, bytes) else str(data).encode())

    def open(self) -> None:
        """Log in and activate the SOL payload; raises what the BMC said (run under Bounded). An
        older session of this BMC in this process ends first: a machine has one serial port."""
        _, exceptions = pyghmi()
        from pyghmi.ipmi import console

        with _SOL_LOCK:
            old = _SOL.pop(self.bmc.address, None)
        if old is not None:
            old.close()
        cfg = self.bmc.cfg
        with _SOL_LOCK:
            ending = _ENDING.pop(self.bmc.address, None)
        if ending is not None:  # the previous session's logout still in flight: the BMC counts it as active
            ending.wait(cfg.timeout_s)
        pumping = False
        for attempt in (1, 2):
            _drop_sol_sessions(cfg)
            try:
                self._con = console.Console(bmc=cfg.host, userid=cfg.username, password=cfg.password,
                                            port=cfg.port, iohandler=self._got, force=True, kg=cfg.password)
            except (exceptions.PyghmiException, OSError) as exc:
                raise self.bmc.classify(exc) from None
            if not pumping:
                threading.Thread(target=self._pump, name="sol-pump", daemon=True).start()
                pumping = True
            end = time.monotonic() + cfg.timeout_s
            while not (self._con.connected or self._con.broken or self.error or self._closed.is_set()) \
                    and time.monotonic() < end:
                time.sleep(0.02)
            if self._con.connected or self._con.broken or self.error or self._closed.is_set() or attempt == 2:
                break
            # No answer at all (a login or activation packet lost, or a session pyghmi handed over while
            # it ended): end this one and activate once more on a fresh session before giving up
            _end_console(self._con, cfg.timeout_s)
        with _SOL_LOCK:
            _SOL[self.bmc.address] = self
            # A BMC may take a packet whose sequence number equals the last one it saw (the previous
            # session's) for a retransmission: acked, never sent to the serial port (ipmi_sim does). So
            # sequence numbers go on from the last session of this BMC (1-15; pyghmi adds one first).
            self._con.myseq = _SEQ.get(self.bmc.address, secrets.randbelow(15))
        if self.error or not self._con.connected:
            why = self.error or "the BMC did not activate the SOL payload"
            if any(w in why.lower() for w in ("password", "unauthorized", "unknown user", "privilege")):
                raise self.bmc.classify(Exception(why))
            raise BmcError(f"BMC {self.bmc.address} refused serial-over-LAN: {why}; enable SOL for the user on "
                           "the BMC (ipmitool sol set enabled true)", "error")

    def _pump(self) -> None:
        from pyghmi.ipmi import console

        while not self._closed.is_set():
            try:
                console.Console.wait_for_rsp(0.5)
            except Exception:  # pyghmi failing inside its loop ends this session, not the process
                self.error = self.error or "the IPMI session failed"
                self._q.put(None)
                return

    def read(self) -> bytes:
        while not self._closed.is_set():
            try:
                item = self._q.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                return b""
            if item:
                return item
        return b""

    def write(self, data: bytes) -> None:
        con = self._con
        if con is None or self._closed.is_set():
            return
        try:
            con.send_data(bytes(data))
        except Exception as exc:  # pyghmi: the session broke; the console ends, saying why
            self.error = self.error or f"the IPMI session failed: {exc}"
            self._q.put(None)

    def close(self) -> None:
        """End the session: deactivate the payload and log out, so the next SOL session of this BMC
        starts a session of its own (pyghmi would hand it this one, on which activation hangs)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._q.put(None)
        ended = threading.Event()
        with _SOL_LOCK:  # one step: a new session of this BMC sees either this one open or its logout pending
            if _SOL.get(self.bmc.address) is self:
                del _SOL[self.bmc.address]
            con, self._con = self._con, None
            if con is not None:
                _SEQ[self.bmc.address] = int(con.myseq) % 15
                _ENDING[self.bmc.address] = ended
        if con is not None:
            _end_console(con, self.bmc.cfg.timeout_s, ended)
