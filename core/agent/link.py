"""The agent's side of core.hostapi.routes: one authenticated client, one method per route."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.agent.config import AgentConfig
from core.client import AuthOptions, Client
from drivers.base import HypervisorError, StagedDisk

BASE = "/agent"


class ControllerLink:
    def __init__(self, cfg: AgentConfig, *, timeout: float = 90.0) -> None:
        self.cfg = cfg
        auth = AuthOptions(auth_url=cfg.auth_url, username=cfg.username, password=cfg.password,
                           project_name=cfg.project_name, project_domain=cfg.domain_name,
                           user_domain=cfg.domain_name, region=cfg.region)
        # timeout above the long-poll wait; no token cache file (the agent lives long and alone)
        self.client = Client(auth, use_cache=False, timeout=max(timeout, cfg.poll_wait_s + 30))
        self.host = f"{BASE}/hosts/{cfg.host_id}"

    def close(self) -> None:
        self.client.close()

    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.client.post("compute_v2", f"{self.host}/register", json=body)["host"])

    def ping(self, usage: dict[str, Any], samples: dict[str, Any] | None = None) -> dict[str, Any]:
        """Heartbeat; ``samples`` (core/agent/metrics.py Sampler) go to the region's usage history."""
        body: dict[str, Any] = {"usage": usage}
        if samples is not None:
            body["samples"] = samples
        return dict(self.client.post("compute_v2", f"{self.host}/ping", json=body))

    def guests(self, guests: list[dict[str, Any]], *, full: bool) -> list[dict[str, Any]]:
        out = self.client.post("compute_v2", f"{self.host}/guests", json={"guests": guests, "full": full})
        return list(out.get("changed", []))

    def guests_expected(self) -> list[dict[str, Any]]:
        """The servers the region places on this host, with their last recorded status."""
        return list(self.client.get("compute_v2", f"{self.host}/guests-expected").get("guests", []))

    def work_items(self, wait: int, limit: int = 10) -> list[dict[str, Any]]:
        return self.poll(wait, limit)[0]

    def poll(self, wait: int, limit: int = 10, secgroup_version: int | None = None
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int | None, dict[str, Any] | None]:
        """The long poll: (work items, console sessions to connect, the host's secgroup_version, and
        its security groups when they changed); it ends early when the version is not
        ``secgroup_version`` (the host's security groups changed) and then carries them."""
        params: dict[str, Any] = {"wait": wait, "limit": limit}
        if secgroup_version is not None:
            params.update(secgroup_version=secgroup_version, with_secgroups=1)
        out = self.client.get("compute_v2", f"{self.host}/work-items", params=params)
        v, sg = out.get("secgroup_version"), out.get("secgroups")
        return (list(out.get("work_items", [])), list(out.get("consoles", [])),
                int(v) if isinstance(v, int) else None, sg if isinstance(sg, dict) else None)

    def ack(self, ids: list[str]) -> list[str]:
        """Tell the region these polled items arrived (else it hands them out again after a few seconds)."""
        return list(self.client.post("compute_v2", f"{self.host}/work-items/ack", json={"ids": ids}).get("acked", []))

    def secgroups(self) -> Any:
        """The host's guest ports with their effective rules (core.host_protocol.HostSecgroups)."""
        from core.host_protocol import HostSecgroups

        return HostSecgroups.model_validate(self.client.get("compute_v2", f"{self.host}/secgroups")["secgroups"])

    def console_socket(self, session_id: str, relay_url: str = "") -> Any:
        """An outbound websocket carrying console session ``session_id`` (to the replica that holds it)."""
        base = (relay_url.rstrip("/") + "/api/s/compute_v2") if relay_url else self.client.endpoint("compute_v2")
        return self.client.websocket(f"{base}{self.host}/consoles/{session_id}")

    def report(self, task_id: str, work_item_id: str, result: dict[str, Any]) -> None:
        self.client.post("compute_v2", f"{BASE}/tasks/{task_id}", json={"work_item_id": work_item_id, **result})

    def upload_disk(self, server_id: str, disk_id: str, chunks: Iterator[bytes], sha256: str = "") -> dict[str, Any]:
        """Stream a migrating guest's disk to the controller; {id, sha256, size} as it stored them."""
        with self.client.stream("PUT", "compute_v2", f"{self.host}/migrations/{server_id}/disks/{disk_id}",
                                content=chunks, headers={"content-type": "application/octet-stream",
                                                         **({"x-disk-sha256": sha256} if sha256 else {})}) as resp:
            resp.read()
            return dict(resp.json()["disk"])

    def upload_image(self, image_id: str, chunks: Iterator[bytes], size: int) -> dict[str, Any]:
        """Stream a saved disk into the queued image (glance's intake runs on it); glance's answer."""
        with self.client.stream("PUT", "compute_v2", f"{self.host}/images/{image_id}", content=chunks,
                                headers={"content-type": "application/octet-stream",
                                         "content-length": str(size)}) as resp:
            resp.read()
            return dict(resp.json()["image"])

    @contextmanager
    def download_disk(self, server_id: str, disk_id: str) -> Iterator[Any]:
        """The streamed disk another host uploaded (header x-disk-sha256)."""
        with self.client.stream("GET", "compute_v2", f"{self.host}/migrations/{server_id}/disks/{disk_id}") as resp:
            yield resp

    @contextmanager
    def image(self, image_id: str) -> Iterator[Any]:
        """The streamed image response (headers: x-image-format, x-image-sha256, x-image-properties)."""
        with self.client.stream("GET", "compute_v2", f"{self.host}/images/{image_id}") as resp:
            yield resp


def _big_reads() -> None:
    """Socket reads of 1 MiB instead of httpcore's 64 KiB: a downloaded disk costs a third of the CPU.

    A class attribute of httpcore's HTTP/1.1 connection (how much one ``recv`` may return), so it
    holds for this agent's every connection; answers are parsed the same either way."""
    try:
        from httpcore._sync.http11 import HTTP11Connection
    except ImportError:  # another httpcore layout: the default reads still work
        return
    if getattr(HTTP11Connection, "READ_NUM_BYTES", 0) < 1 << 20:
        HTTP11Connection.READ_NUM_BYTES = 1 << 20


class _Behind:
    """Work on blocks in a thread beside the transfer (sha256 and file writes release the GIL).

    ``put`` hands a block over (at most ``depth`` wait); ``close`` waits for the last one and
    re-raises what the thread raised."""

    def __init__(self, fn: Any, depth: int = 4) -> None:
        import queue
        import threading

        self._fn = fn
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._err: BaseException | None = None
        self._t = threading.Thread(target=self._run, name="disk-transfer", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while (block := self._q.get()) is not None:
            if self._err is None:
                try:
                    self._fn(block)
                except BaseException as exc:  # reported by close()
                    self._err = exc

    def put(self, block: bytes) -> None:
        if self._err is not None:
            raise self._err
        self._q.put(block)

    def close(self) -> None:
        self._q.put(None)
        self._t.join()
        if self._err is not None:
            raise self._err


class DiskTransfer:
    """``drivers.base.DiskExchange`` over this link: disk files stream through the controller, sha256-checked."""

    CHUNK = 4 << 20

    def __init__(self, link: ControllerLink) -> None:
        self.link = link
        _big_reads()

    def upload(self, server_id: str, disk_id: str, path: str) -> StagedDisk:
        import hashlib

        h = hashlib.sha256()
        hasher = _Behind(h.update)

        def chunks() -> Iterator[bytes]:  # hashed beside the upload; the controller hashes what it stored
            with open(path, "rb") as f:
                while block := f.read(self.CHUNK):
                    hasher.put(block)
                    yield block

        try:
            out = self.link.upload_disk(server_id, disk_id, chunks())
        finally:
            hasher.close()
        if out.get("sha256") != h.hexdigest():
            raise HypervisorError(f"disk {disk_id} of {server_id}: the controller stored sha256 {out.get('sha256')}, "
                                  f"this host sent {h.hexdigest()}")
        return StagedDisk(disk_id=disk_id, sha256=str(out["sha256"]), size=int(out["size"]))

    def upload_image(self, image_id: str, path: str) -> dict[str, Any]:
        """``drivers.base.ImageUpload``: the file into the queued image, through glance's intake."""
        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as f:
                while block := f.read(self.CHUNK):
                    yield block

        return self.link.upload_image(image_id, chunks(), os.path.getsize(path))

    def download(self, server_id: str, disk_id: str, path: str, *, sha256: str) -> None:
        import hashlib
        import os

        h = hashlib.sha256()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                def keep(block: bytes) -> None:
                    h.update(block)
                    f.write(block)

                writer = _Behind(keep)
                try:
                    with self.link.download_disk(server_id, disk_id) as resp:
                        buf: list[bytes] = []
                        n = 0
                        for piece in resp.iter_raw():  # identity encoding: the bytes as sent
                            buf.append(piece)
                            n += len(piece)
                            if n >= self.CHUNK:
                                writer.put(b"".join(buf))
                                buf, n = [], 0
                        if buf:
                            writer.put(b"".join(buf))
                finally:
                    writer.close()
            if h.hexdigest() != sha256:
                raise HypervisorError(f"disk {disk_id} of {server_id}: downloaded sha256 {h.hexdigest()}, "
                                      f"the source uploaded {sha256 or 'none'}")
        except BaseException:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            raise


def join(controller: str, token: str, host_name: str, access_mac: str = "", timeout: float = 30.0) -> dict[str, Any]:
    """Spend a join token at ``controller`` (its base URL); returns the new agent's identity."""
    import httpx

    from core.client import to_error
    from core.errors import ConnectionFailedError, InputParameterError

    if not controller.startswith(("http://", "https://")):
        raise InputParameterError(f"--controller {controller!r}: expected http(s)://host:port")
    url = controller.rstrip("/") + "/api/s/compute_v2/agent/join"
    try:
        resp = httpx.post(url, json={"token": token, "host_name": host_name, "access_mac": access_mac},
                          timeout=timeout)
    except httpx.TransportError as e:
        raise ConnectionFailedError(f"cannot reach the controller at {controller}: {e}") from None
    if resp.status_code >= 400:
        raise to_error(resp)
    return dict(resp.json())
