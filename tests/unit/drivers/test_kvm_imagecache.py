from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.agent.imagecache import ImageCache, ImageChecksumMismatch, ImageFetchError, http_fetcher
from drivers.base import InvalidSpec

IMAGE = bytes(range(256)) * 8192  # 2 MiB
SHA = hashlib.sha256(IMAGE).hexdigest()


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 serving /images/<id>; records every request path."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            if self.path == "/images/flaky" and hits.count(self.path) == 1:
                # first try: promise the whole image, send half, drop the connection
                self.send_response(200)
                self.send_header("Content-Length", str(len(IMAGE)))
                self.end_headers()
                self.wfile.write(IMAGE[: len(IMAGE) // 2])
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            if self.path not in ("/images/img-1", "/images/flaky"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
            for i in range(0, len(IMAGE), 65536):
                self.wfile.write(IMAGE[i : i + 65536])

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}/images/{{image_id}}", hits
    srv.shutdown()
    srv.server_close()


def test_download_verify_and_reuse(server: tuple[str, list[str]], tmp_path: Path) -> None:
    url, hits = server
    cache = ImageCache(str(tmp_path), http_fetcher(url))
    path = cache.get("img-1", sha256=SHA)
    assert Path(path).read_bytes() == IMAGE
    assert cache.get("img-1", sha256=SHA.upper()) == path
    assert hits == ["/images/img-1"] and cache.list() == ["img-1"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_concurrent_callers_download_once(server: tuple[str, list[str]], tmp_path: Path) -> None:
    url, hits = server
    cache = ImageCache(str(tmp_path), http_fetcher(url))
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("img-1", sha256=SHA))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert hits == ["/images/img-1"] and cache.downloads == 1


def test_checksum_mismatch_keeps_nothing(server: tuple[str, list[str]], tmp_path: Path) -> None:
    url, _ = server
    cache = ImageCache(str(tmp_path), http_fetcher(url))
    with pytest.raises(ImageChecksumMismatch, match=f"sha256 is {SHA}, expected 0000"):
        cache.get("img-1", sha256="0" * 64)
    assert not cache.cached("img-1") and cache.list() == []
    assert [p.name for p in tmp_path.iterdir()] == [".locks"]


def test_http_error_is_clear(server: tuple[str, list[str]], tmp_path: Path) -> None:
    url, _ = server
    cache = ImageCache(str(tmp_path), http_fetcher(url))
    with pytest.raises(ImageFetchError, match="HTTP 404"):
        cache.get("img-404")
    refused = ImageCache(str(tmp_path / "b"), http_fetcher("http://127.0.0.1:9/{image_id}"))
    with pytest.raises(ImageFetchError, match="download of image x failed"):
        refused.get("x")


def test_injected_fetcher_and_remove(tmp_path: Path) -> None:
    cache = ImageCache(str(tmp_path), lambda image_id: iter([b"abc", b"def"]))
    assert Path(cache.get("tiny")).read_bytes() == b"abcdef"
    assert cache.remove("tiny") is True and cache.remove("tiny") is False


@pytest.mark.parametrize("bad", ["../etc/passwd", ".hidden", "a/b", "", "x.part"])
def test_bad_image_ids(bad: str, tmp_path: Path) -> None:
    cache = ImageCache(str(tmp_path), lambda i: iter([b""]))
    with pytest.raises(InvalidSpec, match="bad image id"):
        cache.get(bad)


def test_dropped_connection_is_retried(server: tuple[str, list[str]], tmp_path: Path) -> None:
    url, hits = server
    cache = ImageCache(str(tmp_path), http_fetcher(url))
    path = cache.get("flaky", sha256=SHA)
    assert Path(path).read_bytes() == IMAGE
    assert hits == ["/images/flaky", "/images/flaky"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
