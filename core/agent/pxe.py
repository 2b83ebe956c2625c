"""The boot network bare-metal machines deploy through: our DHCP, TFTP and a small HTTP server on
one interface, and the jobs the deploy ramdisk reports to (``drivers.base.PxeBoot``).

A machine's turn (``stage``) gives its MAC a DHCP lease whose iPXE boot file is an HTTP URL with a
one-time token: ``/pxe/<token>/boot.ipxe`` (the iPXE script) boots the deploy kernel and ramdisk
(scripts/build-deploy-ramdisk.sh) with ``cp.url``/``cp.ip``/``cp.action`` on the command line; the
ramdisk streams ``/pxe/<token>/image`` (served once) onto the machine's disk and POSTs
``/pxe/<token>/report``. A legacy PXE ROM gets ``undionly.kpxe`` (iPXE) over TFTP from
``tftp_root`` when that file is there. Unknown MACs get no answer (another DHCP server may share
the wire). ``close`` ends the turn: the lease and the token are gone.

Two answers make iPXE fast (PEERS.md "Bare metal end to end"): DHCP option 175.176 (no ProxyDHCP
wait, core/agent/dhcp.py) and an IPv6 router advertisement (iPXE otherwise waits ~13 s for IPv6
autoconfiguration after its DHCPv4 ACK): ``RouterAdvertiser`` answers router solicitations with
an RA of router lifetime 0 (no default route is offered to anyone).

    svc = PxeService(PxeSettings(interface="br-pxe", kernel=..., ramdisk=...)); svc.start()
    job = svc.stage("52:54:00:12:34:56", "deploy", local_image)   # before powering the machine on
    result = job.wait(600); job.close()
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import secrets
import shutil
import socket
import struct
import subprocess
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from core.agent.dhcp import DhcpServer, Lease, interface_ipv4
from core.loops import Loops
from drivers.base import HypervisorError, InvalidSpec, LocalImage

log = logging.getLogger("cloudpods.pxe")

ACTIONS = ("deploy", "wipe")
_SIOCGIFNETMASK = 0x891B


CRC_CHUNK = 16 << 20  # the ramdisk reports the CRC-32 of each piece of this size (scripts/deploy-ramdisk/init)


class PxeConfigError(ValueError):
    """The boot network cannot run as configured (names the setting to fix)."""


@dataclass(frozen=True)
class PxeSettings:
    interface: str
    kernel: str
    ramdisk: str
    http_port: int = 0  # 0: any free port (the URLs handed out name it)
    ip_range: str = ""  # "FIRST-LAST" deploy addresses; default: the upper half of the interface's subnet
    tftp_root: str = ""  # where undionly.kpxe for legacy PXE ROMs is; "" = no TFTP
    # mitigations=off: the ramdisk runs only our script; syscalls (every read and write of the deploy)
    # cost less without the page-table switch, most of all on an emulated CPU. no_timer_check: the boot's
    # IO-APIC timer check counts ticks in a fixed window; an emulated machine starved of CPU fails it
    # and panics ("IO-APIC + timer doesn't work", seen at load 30 here); KVM guests skip it the same way
    kernel_args: str = "console=ttyS0 quiet panic=-1 mitigations=off no_timer_check"
    dhcp_port: int = 67


def _netmask(interface: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        import fcntl

        try:
            res = fcntl.ioctl(s.fileno(), _SIOCGIFNETMASK, struct.pack("256s", interface.encode()[:15]))
        except OSError:
            return 24
    return ipaddress.IPv4Network(f"0.0.0.0/{socket.inet_ntoa(res[20:24])}").prefixlen


def _pool(server_ip: str, prefixlen: int, spec: str) -> list[str]:
    net = ipaddress.IPv4Network(f"{server_ip}/{prefixlen}", strict=False)
    if spec:
        try:
            first, last = (ipaddress.IPv4Address(p.strip()) for p in spec.split("-", 1))
        except ValueError:
            raise PxeConfigError(f"baremetal_pxe_range: must be FIRST-LAST IPv4 addresses, got {spec!r}") from None
        if first not in net or last not in net or last < first:
            raise PxeConfigError(f"baremetal_pxe_range {spec} is not an ordered range inside {net}")
        ips = [str(ipaddress.IPv4Address(i)) for i in range(int(first), int(last) + 1)]
    else:
        hosts = list(net.hosts())
        ips = [str(a) for a in hosts[len(hosts) // 2:]]
    return [ip for ip in ips if ip != server_ip]


@dataclass
class Job:
    """One machine's turn on the boot network (``drivers.base.PxeJob``)."""

    service: PxeService
    mac: str
    action: str
    ip: str
    token: str
    image: Path | None = None
    size: int = 0
    crc32: str = ""  # CRC-32 of each CRC_CHUNK bytes, "."-joined: what the ramdisk reports (see _raw)
    seen: list[str] = field(default_factory=list)  # what the machine fetched so far, for a timeout's reason
    result: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    image_taken: bool = False
    t0: float = field(default_factory=time.monotonic)
    t0_wall: float = field(default_factory=time.time)

    def saw(self, what: str) -> None:
        self.seen.append(f"{what}@{time.monotonic() - self.t0:.1f}s")

    def timeline(self) -> str:
        """What the machine did so far, in seconds after its turn was staged: its DHCP exchange, then its
        requests here (for a timeout's reason and the log of each deploy)."""
        dhcp = [f"dhcp-{e.kind}@{e.at - self.t0_wall:.1f}s" for e in list(self.service.events)
                if e.mac == self.mac and e.at >= self.t0_wall and e.kind in ("discover", "ack")]
        return ", ".join(dhcp + self.seen)

    @property
    def md5(self) -> str:
        """The image's md5: what a ramdisk built before CRC-32 pieces reports (only hashed for one)."""
        assert self.image is not None
        return self.service.md5(self.image)

    def reported(self, timeout_s: float) -> bool:
        return self.done.wait(timeout_s)

    def wait(self, timeout_s: float, total_s: float | None = None) -> dict[str, Any]:
        if not self.done.wait(timeout_s):
            got = self.timeline() or "no request from it"
            waited = timeout_s if total_s is None else total_s
            raise HypervisorError(f"the machine with MAC {self.mac} did not report its {self.action} within "
                                  f"{waited:g} s (seen: {got}); check that it boots from the network "
                                  f"{self.service.settings.interface} is on")
        res = dict(self.result or {})
        if res.get("status") != "ok":
            raise HypervisorError(f"the deploy ramdisk on {self.mac} failed: {res.get('message') or 'no reason'}")
        kind = "crc32" if res.get("crc32") else "md5"
        if self.action == "deploy" and kind == "crc32" and res.get("chunk") != str(CRC_CHUNK):
            raise HypervisorError(f"the deploy ramdisk on {self.mac} hashed {res.get('chunk')!r}-byte pieces, "
                                  f"this controller {CRC_CHUNK}: rebuild the ramdisk (scripts/build-deploy-ramdisk.sh)")
        if self.action == "deploy" and res.get(kind) != getattr(self, kind):
            raise HypervisorError(f"the image written on {self.mac} reads back as {kind} {res.get(kind)!r}, "
                                  f"not {getattr(self, kind)}: the disk or the transfer is faulty")
        return res

    def close(self) -> None:
        self.service.release(self)


class PxeService:
    """DHCP (+ TFTP) + HTTP on one interface, and the staged jobs (``drivers.base.PxeBoot``)."""

    def __init__(self, settings: PxeSettings, raw_dir: str | Path) -> None:
        self.settings = settings
        self.raw_dir = Path(raw_dir)
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}  # token -> job
        self._by_mac: dict[str, Job] = {}
        self._sums: dict[tuple[str, float], tuple[int, str]] = {}
        self.server_ip = ""
        self._pool: list[str] = []
        self._dhcp: DhcpServer | None = None
        self._http: ThreadingHTTPServer | None = None
        self._tftp: Any = None
        self._ra: RouterAdvertiser | None = None
        self.http_port = 0
        # PXE clients whose MAC has no turn here: MAC -> when first seen; ``on_discover(mac)`` is told once each
        self.discovered: dict[str, float] = {}
        self.on_discover: Any = None

    # ---- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        st = self.settings
        for what, path in (("baremetal_deploy_kernel", st.kernel), ("baremetal_deploy_ramdisk", st.ramdisk)):
            if not path or not Path(path).is_file():
                raise PxeConfigError(f"{what}: {path or '(unset)'} is not a file (build them with "
                                     "scripts/build-deploy-ramdisk.sh)")
        ip = interface_ipv4(st.interface)
        if ip is None:
            raise PxeConfigError(f"baremetal_pxe_interface: {st.interface} has no IPv4 address (or does not exist)")
        self.server_ip = ip
        self._pool = _pool(ip, _netmask(st.interface), st.ip_range)
        svc = self

        class Handler(_Handler):
            service = svc

        self._http = ThreadingHTTPServer((ip, st.http_port), Handler)
        self._http.daemon_threads = True
        self.http_port = int(self._http.server_address[1])
        threading.Thread(target=self._http.serve_forever, name="pxe-http", daemon=True).start()
        try:
            self._dhcp = DhcpServer(st.interface, server_ip=ip, port=st.dhcp_port)
            self._dhcp.responder.on_unknown = self._unknown
            self._dhcp.start()
            if st.tftp_root and (Path(st.tftp_root) / "undionly.kpxe").is_file():
                from core.agent.tftp import TftpBootServer

                self._tftp = TftpBootServer(st.tftp_root, ip)
                self._tftp.start()
            self._ra = RouterAdvertiser(st.interface)
            self._ra.start()
        except Exception:
            self.stop()
            raise
        log.info("PXE boot network on %s (%s): HTTP port %d, deploy addresses %s..%s", st.interface, ip,
                 self.http_port, self._pool[0] if self._pool else "-", self._pool[-1] if self._pool else "-")

    def stop(self) -> None:
        for part in (self._ra, self._tftp, self._dhcp):
            if part is not None:
                part.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self._ra = self._tftp = self._dhcp = self._http = None

    @property
    def events(self) -> Any:
        return self._dhcp.events if self._dhcp is not None else ()

    # ---- jobs ---------------------------------------------------------------------------------------
    def stage(self, mac: str, action: str, image: LocalImage | None = None) -> Job:
        mac = mac.strip().lower().replace("-", ":")
        if action not in ACTIONS:
            raise InvalidSpec(f"PXE action must be one of {', '.join(ACTIONS)}, got {action!r}")
        if action == "deploy" and image is None:
            raise InvalidSpec("a deploy needs an image")
        raw, size, crc = self._raw(image) if image is not None else (None, 0, "")
        with self._lock:
            if mac in self._by_mac:
                raise HypervisorError(f"machine {mac} is already in a PXE {self._by_mac[mac].action}")
            taken = {j.ip for j in self._by_mac.values()}
            free = [ip for ip in self._pool if ip not in taken]
            if not free:
                raise HypervisorError(f"no free deploy address on {self.settings.interface}: "
                                      f"{len(self._pool)} machines are deploying (widen baremetal_pxe_range)")
            job = Job(self, mac, action, free[0], secrets.token_urlsafe(24), raw, size, crc)
            self._jobs[job.token] = job
            self._by_mac[mac] = job
        assert self._dhcp is not None
        self._dhcp.set_lease(Lease(mac=mac, ip=job.ip, prefixlen=_netmask(self.settings.interface),
                                   next_server=self.server_ip, bootfile="undionly.kpxe",
                                   ipxe_bootfile=f"{self.base_url}/pxe/{job.token}/boot.ipxe", lease_time=600))
        return job

    def _unknown(self, req: Any) -> None:
        """A DISCOVER from a MAC with no turn: a machine PXE-booting that may be enrolled (once per MAC)."""
        if not req.options.get(60, b"").startswith(b"PXEClient"):
            return  # not a network boot ROM: some other DHCP client on the wire
        with self._lock:
            if req.mac in self.discovered:
                return
            self.discovered[req.mac] = time.time()
        log.info("PXE boot from unknown MAC %s on %s", req.mac, self.settings.interface)
        if self.on_discover is not None:
            threading.Thread(target=self.on_discover, args=(req.mac,), name="pxe-enrol", daemon=True).start()

    def release(self, job: Job) -> None:
        with self._lock:
            self._jobs.pop(job.token, None)
            if self._by_mac.get(job.mac) is job:
                del self._by_mac[job.mac]
        if self._dhcp is not None:
            self._dhcp.remove_lease(job.mac)

    def job(self, token: str) -> Job | None:
        with self._lock:
            return self._jobs.get(token)

    @property
    def base_url(self) -> str:
        return f"http://{self.server_ip}:{self.http_port}"

    def script(self, job: Job) -> str:
        url = f"{self.base_url}/pxe/{job.token}"
        prefix = _netmask(self.settings.interface)
        return ("#!ipxe\n"
                f"kernel {url}/kernel initrd=initrd {self.settings.kernel_args} cp.url={url} cp.mac={job.mac} "
                f"cp.ip={job.ip}/{prefix} cp.action={job.action}\n"
                f"initrd --name initrd {url}/initrd\n"
                "boot\n")

    def _raw(self, image: LocalImage) -> tuple[Path, int, str]:
        """The image as a raw file (converted once with qemu-img) with its size and CRC-32s: a check
        that the disk holds what was sent (glance verified the image's sha256 already), against
        accidents, not an adversary. The ramdisk hashes the disk with busybox: on an emulated CPU (the
        tests) its crc32 of a piece copied to RAM took a third of the md5 through a pipe it used to
        run; older ramdisks still report an md5 of the whole image (``md5``, hashed only for them)."""
        src = Path(image.path)
        if image.format == "raw":
            raw = src
        else:
            raw = self.raw_dir / (hashlib.sha256(str(src).encode()).hexdigest()[:24] + ".raw")
            if not raw.exists() or raw.stat().st_mtime < src.stat().st_mtime:
                qemu_img = shutil.which("qemu-img")
                if qemu_img is None:
                    raise HypervisorError(f"image {src.name} is {image.format}: converting it for a bare-metal "
                                          "deploy needs qemu-img (apt install qemu-utils)")
                self.raw_dir.mkdir(parents=True, exist_ok=True)
                tmp = raw.with_suffix(".tmp")
                r = subprocess.run([qemu_img, "convert", "-O", "raw", str(src), str(tmp)], capture_output=True,
                                   text=True, check=False)
                if r.returncode != 0:
                    raise HypervisorError(f"converting image {src.name} to raw failed: {r.stderr.strip()[-500:]}")
                os.replace(tmp, raw)
        st = raw.stat()
        key = (str(raw), st.st_mtime)
        with self._lock:
            have = self._sums.get(key)
        if have is None:
            crcs = []
            with open(raw, "rb") as f:
                while block := f.read(CRC_CHUNK):
                    crcs.append(f"{zlib.crc32(block):08x}")
            have = (st.st_size, ".".join(crcs))
            with self._lock:
                self._sums[key] = have
        return raw, have[0], have[1]

    @staticmethod
    def md5(raw: Path) -> str:
        h = hashlib.md5(usedforsecurity=False)
        with open(raw, "rb") as f:
            while block := f.read(CRC_CHUNK):
                h.update(block)
        return h.hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """``/pxe/<token>/{boot.ipxe,kernel,initrd,hello,size,image,report}``; anything else is a 404."""

    service: PxeService
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("pxe http %s: " + fmt, self.client_address[0], *args)

    def _route(self) -> tuple[Job | None, str]:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 3 or parts[0] != "pxe":
            return None, ""
        return self.service.job(parts[1]), parts[2]

    def _send(self, code: int, body: bytes = b"", ctype: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _file(self, path: Path) -> None:
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with open(path, "rb") as f:
            self.connection.sendfile(f)

    def do_GET(self) -> None:
        job, what = self._route()
        if job is None or job.done.is_set():
            return self._send(404, b"unknown or finished deploy token\n")
        job.saw(what)
        svc = self.service
        if what == "boot.ipxe":
            return self._send(200, svc.script(job).encode())
        if what == "kernel":
            return self._file(Path(svc.settings.kernel))
        if what == "initrd":
            return self._file(Path(svc.settings.ramdisk))
        if what == "hello":
            return self._send(200, b"ok\n")
        if what == "size" and job.image is not None:
            return self._send(200, str(job.size).encode())
        if what == "image" and job.image is not None:
            with svc._lock:  # one download per token: a second reader gets nothing
                taken, job.image_taken = job.image_taken, True
            if taken:
                return self._send(410, b"the image of this token was already read\n")
            return self._file(job.image)
        return self._send(404, b"not found\n")

    def do_POST(self) -> None:
        job, what = self._route()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, 1 << 20)).decode(errors="replace") if length else ""
        if job is None or what != "report" or job.done.is_set():
            return self._send(404, b"unknown or finished deploy token\n")
        form = {k: v[0] for k, v in parse_qs(body).items()}
        job.result = {"status": form.get("status", ""), "md5": form.get("md5", ""), "crc32": form.get("crc32", ""),
                      "chunk": form.get("chunk", ""),
                      "message": form.get("message", "").replace("+", " ").replace("_", " ")[:1000],
                      "at": time.time()}
        job.saw(f"report {job.result['status']}")
        job.done.set()
        log.info("PXE %s of %s reported %s: %s (%s)", job.action, job.mac, job.result["status"],
                 job.result["message"], job.timeline())
        return self._send(200, b"ok\n")


# ---- IPv6 router advertisements: iPXE stops waiting for IPv6 autoconfiguration ----------------------
ICMPV6_RS, ICMPV6_RA = 133, 134


class RouterAdvertiser:
    """Answers router solicitations on one interface (and advertises every few seconds) with an RA
    of router lifetime 0 and no prefix: "no IPv6 configuration here", which iPXE takes as done."""

    def __init__(self, interface: str, interval_s: float = 3.0) -> None:
        self.interface = interface
        self.interval_s = interval_s
        self._sock: socket.socket | None = None
        self._loops = Loops(log)  # its one thread, ra-<interface>
        self.sent = 0

    def start(self) -> None:
        try:
            idx = socket.if_nametoindex(self.interface)
            s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        except OSError as exc:  # no IPv6 or no raw sockets: iPXE then only waits longer
            log.warning("no IPv6 router advertisements on %s (%s): PXE boots wait ~13 s longer", self.interface, exc)
            return
        s.setsockopt(socket.SOL_SOCKET, 25, self.interface.encode())  # SO_BINDTODEVICE
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
        try:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                         socket.inet_pton(socket.AF_INET6, "ff02::2") + struct.pack("@I", idx))
        except OSError:
            pass
        s.settimeout(self.interval_s)
        self._sock, self._idx = s, idx
        self._loops.loop(f"ra-{self.interface}", self._serve)

    def _advertise(self) -> None:
        assert self._sock is not None
        # type, code, checksum (the kernel fills it), hop limit 64, flags 0, router lifetime 0,
        # reachable 0, retrans 0
        ra = struct.pack("!BBHBBHII", ICMPV6_RA, 0, 0, 64, 0, 0, 0, 0)
        try:
            self._sock.sendto(ra, ("ff02::1", 0, 0, self._idx))
            self.sent += 1
        except OSError as exc:
            log.debug("RA on %s: %s", self.interface, exc)

    def _serve(self) -> None:
        assert self._sock is not None
        next_at = 0.0
        while not self._loops.stopping.is_set():
            if time.monotonic() >= next_at:
                self._advertise()
                next_at = time.monotonic() + self.interval_s
            try:
                data = self._sock.recv(1500)
            except (TimeoutError, OSError):
                continue
            if data and data[0] == ICMPV6_RS:
                self._advertise()

    def stop(self) -> None:
        self._loops.stop(self.interval_s + 1)
        if self._sock is not None:
            self._sock.close()
        self._sock = None
