"""The agent's image store: a download cut by a dying controller is retried, against a real HTTP server."""
from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path
from types import SimpleNamespace

from core.agent.images import ImageStore
from core.client import AuthOptions, Client

IMAGE = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(IMAGE).hexdigest()


def test_cut_download_is_retried_and_metadata_kept(tmp_path: Path) -> None:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(IMAGE)))
            self.send_header("X-Image-Format", "raw")
            self.send_header("X-Image-Sha256", SHA)
            self.end_headers()
            if len(hits) == 1:  # the replica dies half-way through the first transfer
                self.wfile.write(IMAGE[: len(IMAGE) // 3])
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            self.wfile.write(IMAGE)

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{srv.server_port}"

        class Direct(Client):
            """The agent's real client and streaming path, minus the catalog lookup and login."""

            def endpoint(self, service_type: str) -> str:
                return base

            @property
            def token(self) -> str:
                return "t"

        with Direct(AuthOptions(auth_url=base)) as client:
            # what ControllerLink.image does: core.client turns the cut transfer into ConnectionFailedError
            store = ImageStore(SimpleNamespace(image_dir=str(tmp_path)),  # type: ignore[arg-type]
                               lambda image_id: client.stream("GET", "compute_v2", f"/images/{image_id}"))
            info = store.get("img-9")
    finally:
        srv.shutdown()
        srv.server_close()
    assert Path(info.path).read_bytes() == IMAGE
    assert info.format == "raw" and len(hits) == 2
