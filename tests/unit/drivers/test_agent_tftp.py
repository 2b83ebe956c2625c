"""The agent's read-only TFTP server (core/agent/tftp.py) with tftpy's client as the peer: files under
the root are served, nothing else (no traversal, no symlink escape, no writes)."""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest

tftpy = pytest.importorskip("tftpy")

from core.agent.tftp import TftpBootServer, TftpConfigError  # noqa: E402


def _client(srv: TftpBootServer) -> object:
    return tftpy.TftpClient("127.0.0.1", srv.port)


def _get(srv: TftpBootServer, name: str, out: Path) -> bytes:
    logging.getLogger("tftpy").setLevel(logging.CRITICAL)
    _client(srv).download(name, str(out), timeout=2, retries=1)  # type: ignore[attr-defined]
    return out.read_bytes()


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "tftp"
    (r / "pxe").mkdir(parents=True)
    (r / "boot.ipxe").write_text("#!ipxe\nchain tftp://${next-server}/pxe/kernel\n")
    (r / "pxe" / "kernel").write_bytes(os.urandom(300_000))  # many 512-byte blocks
    (tmp_path / "secret").write_text("outside the root")
    os.symlink(tmp_path / "secret", r / "escape")
    return r


def test_serves_files_under_the_root_byte_for_byte(root: Path, tmp_path: Path) -> None:
    with TftpBootServer(root, "127.0.0.1", 0) as srv:
        assert _get(srv, "boot.ipxe", tmp_path / "a").startswith(b"#!ipxe")
        got = _get(srv, "/pxe/kernel", tmp_path / "b")
        assert hashlib.sha256(got).digest() == hashlib.sha256((root / "pxe" / "kernel").read_bytes()).digest()
        assert srv.served == ["boot.ipxe", "/pxe/kernel"]


@pytest.mark.parametrize("name", ["../secret", "pxe/../../secret", "escape", "/etc/passwd", "pxe", "missing"])
def test_nothing_outside_the_root_nor_a_directory_or_missing_file(root: Path, tmp_path: Path, name: str) -> None:
    with TftpBootServer(root, "127.0.0.1", 0) as srv:
        with pytest.raises(tftpy.TftpException):
            _get(srv, name, tmp_path / "x")
        assert srv.served == []


def test_writes_are_refused(root: Path, tmp_path: Path) -> None:
    src = tmp_path / "up"
    src.write_bytes(b"overwrite")
    with TftpBootServer(root, "127.0.0.1", 0) as srv, pytest.raises(tftpy.TftpException):
        _client(srv).upload("boot.ipxe", str(src), timeout=2, retries=1)  # type: ignore[attr-defined]
    assert (root / "boot.ipxe").read_text().startswith("#!ipxe")
    assert not list(root.glob("up*"))


def test_a_missing_root_or_a_taken_port_is_a_clear_error(root: Path, tmp_path: Path) -> None:
    with pytest.raises(TftpConfigError, match="not a directory"):
        TftpBootServer(tmp_path / "nope", "127.0.0.1", 0)
    with TftpBootServer(root, "127.0.0.1", 0) as srv, pytest.raises(TftpConfigError, match="cannot listen"):
        TftpBootServer(root, "127.0.0.1", srv.port).start()
