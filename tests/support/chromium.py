"""Headless Chromium driven over the DevTools protocol (its websocket; no Selenium, no CDN).

    with Chromium(tmp_path) as c:
        c.navigate(url)
        c.wait_for("document.title", "console (connected)")
        png = c.screenshot()
"""
from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

BINARIES = ("chromium", "chromium-browser", "google-chrome")


def binary() -> str | None:
    return next((b for name in BINARIES if (b := shutil.which(name))), None)


class Chromium:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws: Any = None
        self._ids = itertools.count(1)

    def __enter__(self) -> Chromium:
        import httpx
        from websockets.sync.client import connect

        exe = binary()
        assert exe, "no chromium"
        prof = self.root / "chromium-profile"
        prof.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                      "--disable-dev-shm-usage", f"--user-data-dir={prof}",
                                      "--remote-debugging-port=0", "--window-size=1024,768", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=(self.root / "chromium.log").open("wb"),
                                     start_new_session=True)
        port_file = prof / "DevToolsActivePort"
        end = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()) and time.monotonic() < end:
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
                 if t.get("type") == "page"]
        self.ws = connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=30).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.proc is not None:
            import os
            import signal

            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        i = next(self._ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == i:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return dict(msg.get("result") or {})

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expr: str) -> Any:
        out = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return (out.get("result") or {}).get("value")

    def wait_for(self, expr: str, want: Any, timeout: float = 60) -> Any:
        end = time.monotonic() + timeout
        got = None
        while time.monotonic() < end:
            got = self.evaluate(expr)
            if got == want:
                return got
            time.sleep(0.2)
        raise AssertionError(f"{expr} is {got!r}, not {want!r} after {timeout} s")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
