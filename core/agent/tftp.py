"""The agent's read-only TFTP server for PXE: iPXE binaries, boot scripts, kernels and initrds.

Built on tftpy, hardened for a boot network anyone can send packets on:

* read-only: every write request is refused (TFTP error 2, access violation);
* confined: a requested name resolves (symlinks followed) to a regular file inside ``root``, or
  the client gets "file not found", whatever ``..`` or absolute path it tried;
* tftpy serves from an empty private directory, so every read goes through that check.

    with TftpBootServer("/var/lib/cloudpods/tftp", "10.0.0.1") as srv:   # port 69 by default
        ...   # DHCP leases name srv.address as next-server and a file under the root as bootfile
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Self

log = logging.getLogger(__name__)

__all__ = ["TftpBootServer", "TftpConfigError"]


class TftpConfigError(ValueError):
    """The server cannot start as configured (missing root, tftpy not installed, port taken)."""


class TftpBootServer:
    def __init__(self, root: str | Path, listen_ip: str = "0.0.0.0", port: int = 69, *, timeout: int = 5,
                 retries: int = 3) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise TftpConfigError(f"TFTP root {root} is not a directory")
        self.listen_ip, self.port = listen_ip, port
        self.timeout, self.retries = timeout, retries
        self.served: list[str] = []  # names sent, for the agent's log and tests
        self.started_at: list[tuple[float, str]] = []  # (time.time(), name) of each transfer's start
        self.refused: list[str] = []
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._empty: tempfile.TemporaryDirectory[str] | None = None

    # ---- what may be read ---------------------------------------------------------------------
    def resolve(self, name: str) -> Path | None:
        """The regular file ``name`` means under the root, or None (outside it, missing, not a file)."""
        if not name or "\0" in name or len(name) > 255:
            return None
        candidate = (self.root / name.lstrip("/")).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            return None
        return candidate if candidate.is_file() else None

    def _open(self, name: str, **_kw: Any) -> IO[bytes] | None:
        path = self.resolve(name)
        if path is None:
            self.refused.append(name)
            log.info("tftp: refused %r (not a file under %s)", name, self.root)
            return None
        self.served.append(name)
        self.started_at.append((time.time(), name))
        return open(path, "rb")

    def _no_upload(self, path: str, _ctx: Any) -> None:
        self.refused.append(os.path.basename(path))
        log.info("tftp: refused a write of %r (read-only)", path)
        return None

    # ---- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            import tftpy
        except ModuleNotFoundError as exc:
            raise TftpConfigError("the PXE TFTP server needs tftpy (pip install 'cloudpods-one[baremetal]')") \
                from exc
        logging.getLogger("tftpy").setLevel(logging.WARNING)  # one line per packet otherwise
        self._empty = tempfile.TemporaryDirectory(prefix="cp-tftp-")
        self._server = tftpy.TftpServer(self._empty.name, dyn_file_func=self._open, upload_open=self._no_upload)
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                self._server.listen(self.listen_ip, self.port, timeout=self.timeout, retries=self.retries)
            except BaseException as exc:
                errors.append(exc)
                log.error("tftp server stopped: %s", exc)

        self._thread = threading.Thread(target=serve, name="tftp", daemon=True)
        self._thread.start()
        end = time.monotonic() + 5
        while time.monotonic() < end and not self._server.is_running.is_set() and not errors:
            time.sleep(0.01)
        if errors or not self._server.is_running.is_set():
            self.stop()
            raise TftpConfigError(f"TFTP server cannot listen on {self.listen_ip}:{self.port}: "
                                  f"{errors[0] if errors else 'did not start'}")
        self.port = int(self._server.listenport)

    @property
    def address(self) -> tuple[str, int]:
        return self.listen_ip, self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(now=True)
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None
        if self._empty is not None:
            self._empty.cleanup()
            self._empty = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
