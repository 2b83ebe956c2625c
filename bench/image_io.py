"""Image I/O over loopback against a real controller: upload (md5+sha256 while streaming, fsync,
qemu-img inspection included), download, and the controller's RSS growth while moving N GiB.

    .venv/bin/python bench/image_io.py                       # 1 GiB image, 5 GiB moved
    .venv/bin/python bench/image_io.py --size-mib 256 --move-gib 2

The client is a raw socket (``sendfile`` up, ``recv_into`` down) so the figures are the server's,
not an HTTP client library's. Targets (issue 6): upload ≥ 300 MB/s, download ≥ 1 GB/s,
RSS growth ≤ 50 MB. The machine is shared: figures vary ±30 % from run to run.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.controller import Controller

MB = 1_000_000


def make_file(path: Path, size: int) -> None:
    block = os.urandom(64 << 20)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def _request(port: int, head: str, body_file: Path | None = None) -> tuple[int, bytes, float, int]:
    """Send one request; return (status, body-or-empty, seconds, bytes of body received)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    t0 = time.perf_counter()
    s.sendall(head.encode())
    if body_file is not None:
        with open(body_file, "rb") as f:
            s.sendfile(f)
    buf = bytearray(8 << 20)
    view = memoryview(buf)
    got = s.recv_into(view)
    hdr_end = bytes(buf[:got]).find(b"\r\n\r\n")
    while hdr_end < 0:
        n = s.recv_into(view[got:])
        if not n:
            raise RuntimeError("connection closed before the reply header")
        got += n
        hdr_end = bytes(buf[:got]).find(b"\r\n\r\n")
    header = bytes(buf[:hdr_end]).decode("latin-1")
    status = int(header.split()[1])
    length = 0
    for line in header.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v)
    received = got - hdr_end - 4
    small = bytes(buf[hdr_end + 4:got]) if length < (1 << 20) else b""
    while received < length:
        n = s.recv_into(view)
        if not n:
            break
        if length < (1 << 20):
            small += bytes(view[:n])
        received += n
    dt = time.perf_counter() - t0
    s.close()
    return status, small, dt, received


def upload(ctl: Controller, token: str, path: Path, name: str) -> tuple[str, float]:
    r = ctl.api.post("/api/s/image/v1/images", json={"image": {"name": name, "disk_format": "raw"}})
    r.raise_for_status()
    iid = r.json()["image"]["id"]
    size = path.stat().st_size
    head = (f"PUT /api/s/image/v1/images/{iid} HTTP/1.1\r\nHost: bench\r\nX-Auth-Token: {token}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n")
    status, body, dt, _ = _request(ctl.port, head, path)
    if status != 200:
        raise RuntimeError(f"upload failed: {status} {body[:300]!r}")
    img = json.loads(body)["image"]
    assert img["status"] == "active" and img["size"] == size, img
    return iid, dt


def download(ctl: Controller, token: str, iid: str, size: int) -> float:
    head = (f"GET /api/s/image/v1/images/{iid}/download HTTP/1.1\r\nHost: bench\r\n"
            f"X-Auth-Token: {token}\r\n\r\n")
    status, _, dt, got = _request(ctl.port, head)
    if status != 200 or got != size:
        raise RuntimeError(f"download failed: {status}, {got} of {size} bytes")
    return dt


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--move-gib", type=float, default=5.0)
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    a = ap.parse_args()
    size = a.size_mib << 20
    with tempfile.TemporaryDirectory(dir=a.dir) as d:
        root = Path(d)
        src = root / "image.raw"
        make_file(src, size)
        ctl = Controller.start(root / "ctl")
        try:
            token = ctl.token()
            assert ctl.proc is not None
            # warm-up: imports, first DB writes, qemu-img in the page cache
            iid, _ = upload(ctl, token, src, "warmup")
            download(ctl, token, iid, size)
            base_rss = psutil.Process(ctl.proc.pid).memory_info().rss
            sampler = RssSampler(ctl.proc.pid)
            sampler.start()
            ups: list[float] = []
            downs: list[float] = []
            proc = psutil.Process(ctl.proc.pid)
            cpu_up = cpu_down = 0.0
            moved = 0
            i = 0
            target = int(a.move_gib * (1 << 30))
            ids = [iid]
            while moved < target:
                c0 = sum(proc.cpu_times()[:4])
                if i % 3 == 0:
                    new_id, dt = upload(ctl, token, src, f"bench-{i}")
                    ids.append(new_id)
                    ups.append(dt)
                    cpu_up += sum(proc.cpu_times()[:4]) - c0
                else:
                    downs.append(download(ctl, token, ids[-1], size))
                    cpu_down += sum(proc.cpu_times()[:4]) - c0
                moved += size
                i += 1
            sampler.stop.set()
            sampler.join()
            growth = (sampler.peak - base_rss) / MB
            mb = size / MB
            print(f"image size           {a.size_mib} MiB, moved {moved / (1 << 30):.1f} GiB "
                  f"({len(ups)} uploads, {len(downs)} downloads)")
            up_med = mb / sorted(ups)[len(ups) // 2]
            print(f"upload (hash+fsync)  best {mb / min(ups):7.0f} MB/s   median {up_med:7.0f} MB/s   target >= 300")
            if downs:
                print(f"download             best {mb / min(downs):7.0f} MB/s   median "
                      f"{mb / sorted(downs)[len(downs) // 2]:7.0f} MB/s   target >= 1000")
            gib = size / (1 << 30)
            print(f"controller CPU       upload {cpu_up / (len(ups) * gib):.2f} s/GiB, download "
                  f"{cpu_down / max(1, len(downs)) / gib:.2f} s/GiB (threads included; load-independent)")
            print(f"load average         {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine)")
            print(f"controller RSS       base {base_rss / MB:.0f} MB, peak {sampler.peak / MB:.0f} MB, "
                  f"growth {growth:.1f} MB   target <= 50")
        finally:
            ctl.stop()
            if os.environ.get("BENCH_SHOW_LOG"):
                print(ctl.log_path.read_text()[-3000:])


if __name__ == "__main__":
    main()
