"""Helpers for the glance e2e tests (no tests here): a controller with short glance timeouts, image
files made by the real qemu-img, raw-socket requests for broken clients, and a second tenant."""
from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_identity_support import admin, grant, login, mk_project, mk_user, uniq
from tests.support.controller import Controller
from tests.support.peers import need_binary

V1 = "/api/s/image/v1"
V2 = "/api/s/image/v2"
GLANCE_ENV = {
    "CLOUDPODS_GLANCE_IDLE_TIMEOUT_S": "3",  # a stalled body is dropped quickly
    "CLOUDPODS_GLANCE_MAX_VIRTUAL_SIZE": str(8 << 30),
    "CLOUDPODS_GLANCE_IMAGE_SIZE_CAP": str(256 << 20),
}


def start_controller(root: Path, extra_env: dict[str, str] | None = None) -> Controller:
    ctl = Controller.init(root)
    ctl.env.update(GLANCE_ENV)
    ctl.env.update(extra_env or {})
    ctl.serve()
    return ctl


def controller_fixture() -> Any:
    """A module-scoped fixture: ``gctl = controller_fixture()`` in a test module."""

    @pytest.fixture(scope="module")
    def gctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
        ctl = start_controller(tmp_path_factory.mktemp("glance"))
        yield ctl
        ctl.stop()

    return gctl


def images_dir(ctl: Controller) -> Path:
    return ctl.data_dir / "images"


def stored_files(ctl: Controller) -> set[str]:
    """Every file of the image store, staging included."""
    root = images_dir(ctl)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def qemu_img(*args: str) -> None:
    need_binary("qemu-img", "qemu-utils")
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def make_qcow2(path: Path, size: str = "64M", *extra: str) -> Path:
    qemu_img("create", "-q", "-f", "qcow2", *extra, str(path), size)
    return path


def raw_request(ctl: Controller, head: str, body: bytes, *, close_write: bool = False,
                wait_reply: float = 10.0) -> bytes:
    """Send a hand-made request (a broken client); return whatever reply arrives."""
    s = socket.create_connection(("127.0.0.1", ctl.port))
    s.settimeout(wait_reply)
    try:
        s.sendall(head.encode() + body)
        if close_write:
            s.shutdown(socket.SHUT_WR)
        out = b""
        deadline = time.monotonic() + wait_reply
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                hdr, _, rest = out.partition(b"\r\n\r\n")
                for line in hdr.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:") and len(rest) >= int(line.split(b":")[1]):
                        return out
        return out
    finally:
        s.close()


def put_head(path: str, token: str, length: int, extra: str = "") -> str:
    return (f"PUT {path} HTTP/1.1\r\nHost: t\r\nX-Auth-Token: {token}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n{extra}\r\n")


def wait_status(api: httpx.Client, image_id: str, status: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    img: dict[str, Any] = {}
    while time.monotonic() < deadline:
        img = api.get(f"{V1}/images/{image_id}").json()["image"]
        if img["status"] == status:
            return img
        time.sleep(0.1)
    raise AssertionError(f"image {image_id} is {img.get('status')}, not {status}: {img}")


def tenant(ctl: Controller, role: str = "member") -> tuple[str, str]:
    """A new project with one user holding ``role`` in it; returns (project id, project token)."""
    with admin(ctl) as a:
        proj = mk_project(a)
        user = mk_user(a, password="pw-Secret-1")
        roles = {r["name"]: r["id"] for r in a.get("/roles").json()["roles"]}
        grant(a, f"projects/{proj['id']}", user["id"], roles[role])
    tok = login(ctl, user["name"], "pw-Secret-1", {"project": {"id": proj["id"]}})
    return proj["id"], tok


def client_for(ctl: Controller, token: str) -> httpx.Client:
    return httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": token}, timeout=60)


__all__ = ["V1", "V2", "client_for", "controller_fixture", "images_dir", "make_qcow2", "put_head", "qemu_img",
           "raw_request", "start_controller", "stored_files", "tenant", "uniq", "wait_status"]
