"""The agent's DHCP server: each known guest MAC gets exactly the address the region allocated.

No pool, no guessing: the caller gives a ``Lease`` per MAC (IP, prefix, gateway, DNS, lease
time, optional PXE next-server/bootfile) and may change the mapping at runtime. Unknown MACs
are ignored, so several servers (or another DHCP server) can share a wire. Implements RFC 2131
DISCOVER/OFFER, REQUEST/ACK|NAK in the SELECTING, INIT-REBOOT, RENEWING and REBINDING states,
RELEASE, DECLINE and INFORM.

    with DhcpServer("br-wire1", [Lease(mac="52:54:00:12:34:56", ip="10.0.0.5", prefixlen=24,
                                       gateway="10.0.0.1", dns=("10.0.0.1",))]) as srv:
        srv.set_lease(...)       # at runtime
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Self

__all__ = [
    "DHCP_CLIENT_PORT",
    "DHCP_SERVER_PORT",
    "Binding",
    "DhcpConfigError",
    "DhcpEvent",
    "DhcpPacket",
    "DhcpResponder",
    "DhcpServer",
    "Lease",
    "Reply",
    "interface_ipv4",
]

log = logging.getLogger(__name__)

DHCP_SERVER_PORT = 67
DHCP_CLIENT_PORT = 68
MAGIC = b"\x63\x82\x53\x63"

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = 1, 2, 3, 4, 5, 6, 7, 8
MSG_NAMES = {
    1: "discover",
    2: "offer",
    3: "request",
    4: "decline",
    5: "ack",
    6: "nak",
    7: "release",
    8: "inform",
}

OPT_PAD, OPT_END = 0, 255
OPT_SUBNET_MASK, OPT_ROUTER, OPT_DNS, OPT_HOSTNAME, OPT_DOMAIN = 1, 3, 6, 12, 15
OPT_MTU, OPT_BROADCAST = 26, 28
OPT_REQUESTED_IP, OPT_LEASE_TIME, OPT_MSG_TYPE, OPT_SERVER_ID = 50, 51, 53, 54
OPT_MESSAGE, OPT_T1, OPT_T2, OPT_VENDOR_CLASS = 56, 58, 59, 60
OPT_TFTP_SERVER, OPT_BOOTFILE, OPT_USER_CLASS, OPT_IPXE_ENCAP = 66, 67, 77, 175
BROADCAST_FLAG = 0x8000


class DhcpConfigError(ValueError):
    """A lease or server setting is invalid."""


# --- lease records --------------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    """What one guest MAC is told. ``next_server``/``bootfile`` make it a PXE answer; with
    ``ipxe_bootfile`` a legacy PXE ROM gets ``bootfile`` (e.g. undionly.kpxe, which is iPXE) and
    a client that says it is iPXE (user class "iPXE") gets ``ipxe_bootfile`` (its boot script)."""

    mac: str
    ip: str
    prefixlen: int
    gateway: str | None = None
    dns: tuple[str, ...] = ()
    lease_time: int = 86400
    hostname: str | None = None
    domain: str | None = None
    mtu: int | None = None
    next_server: str | None = None
    bootfile: str | None = None
    ipxe_bootfile: str | None = None

    def __post_init__(self) -> None:
        mac = self.mac.lower().replace("-", ":")
        if len(mac) != 17 or any(c not in "0123456789abcdef:" for c in mac) or mac.count(":") != 5:
            raise DhcpConfigError(f"bad MAC address {self.mac!r}")
        object.__setattr__(self, "mac", mac)
        ip = _v4(self.ip, "ip")
        if not isinstance(self.prefixlen, int) or not 1 <= self.prefixlen <= 32:
            raise DhcpConfigError(f"prefixlen must be 1..32, got {self.prefixlen!r}")
        net = ipaddress.IPv4Network(f"{ip}/{self.prefixlen}", strict=False)
        if self.gateway is not None and _v4(self.gateway, "gateway") not in net:
            raise DhcpConfigError(f"gateway {self.gateway} is outside {net}")
        object.__setattr__(self, "dns", tuple(self.dns))
        for d in self.dns:
            _v4(d, "dns server")
        if self.next_server is not None:
            _v4(self.next_server, "next_server")
        if not isinstance(self.lease_time, int) or not 10 <= self.lease_time <= 0xFFFFFFFE:
            raise DhcpConfigError(f"lease_time must be 10..{0xFFFFFFFE} seconds, got {self.lease_time!r}")
        if self.mtu is not None and not 68 <= self.mtu <= 65535:
            raise DhcpConfigError(f"mtu must be 68..65535, got {self.mtu}")
        if self.ipxe_bootfile is not None and not self.bootfile:
            raise DhcpConfigError("ipxe_bootfile given without bootfile")
        for name in ("hostname", "domain", "bootfile", "ipxe_bootfile"):
            value = getattr(self, name)
            if value is not None and (not value or len(value.encode()) > 127 or "\0" in value):
                raise DhcpConfigError(f"{name} must be 1..127 bytes, got {value!r}")

    @property
    def netmask(self) -> str:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{self.prefixlen}").netmask)

    @property
    def broadcast(self) -> str:
        return str(ipaddress.IPv4Network(f"{self.ip}/{self.prefixlen}", strict=False).broadcast_address)


def _v4(value: str, what: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except (ValueError, TypeError):
        raise DhcpConfigError(f"bad {what} {value!r}") from None


# --- packet codec ---------------------------------------------------------------------------

_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")


@dataclass
class DhcpPacket:
    op: int
    xid: int
    chaddr: bytes  # 6-byte hardware address
    flags: int = 0
    secs: int = 0
    ciaddr: str = "0.0.0.0"
    yiaddr: str = "0.0.0.0"
    siaddr: str = "0.0.0.0"
    giaddr: str = "0.0.0.0"
    sname: bytes = b""
    file: bytes = b""
    options: dict[int, bytes] = field(default_factory=dict)

    @property
    def mac(self) -> str:
        return ":".join(f"{b:02x}" for b in self.chaddr[:6])

    @property
    def msg_type(self) -> int | None:
        v = self.options.get(OPT_MSG_TYPE)
        return v[0] if v and len(v) == 1 else None

    def ip_option(self, code: int) -> str | None:
        v = self.options.get(code)
        return socket.inet_ntoa(v) if v is not None and len(v) == 4 else None

    @classmethod
    def parse(cls, data: bytes) -> DhcpPacket:
        """Decode a BOOTP/DHCP datagram; raises ValueError on anything malformed."""
        if len(data) < _HEADER.size + 4:
            raise ValueError(f"datagram too short ({len(data)} bytes)")
        op, htype, hlen, _hops, xid, secs, flags, ci, yi, si, gi, ch, sname, file = _HEADER.unpack_from(data)
        if htype != 1 or hlen != 6:
            raise ValueError(f"not Ethernet (htype={htype}, hlen={hlen})")
        if data[_HEADER.size : _HEADER.size + 4] != MAGIC:
            raise ValueError("no DHCP magic cookie")
        options = _parse_options(data[_HEADER.size + 4 :])
        return cls(
            op=op,
            xid=xid,
            chaddr=ch[:6],
            flags=flags,
            secs=secs,
            ciaddr=socket.inet_ntoa(ci),
            yiaddr=socket.inet_ntoa(yi),
            siaddr=socket.inet_ntoa(si),
            giaddr=socket.inet_ntoa(gi),
            sname=sname.rstrip(b"\0"),
            file=file.rstrip(b"\0"),
            options=options,
        )

    def encode(self) -> bytes:
        head = _HEADER.pack(
            self.op,
            1,
            6,
            0,
            self.xid,
            self.secs,
            self.flags,
            socket.inet_aton(self.ciaddr),
            socket.inet_aton(self.yiaddr),
            socket.inet_aton(self.siaddr),
            socket.inet_aton(self.giaddr),
            self.chaddr.ljust(16, b"\0"),
            self.sname[:63].ljust(64, b"\0"),
            self.file[:127].ljust(128, b"\0"),
        )
        opts = bytearray(MAGIC)
        # message type first: some clients (old PXE ROMs) expect it there
        for code in sorted(self.options, key=lambda c: (c != OPT_MSG_TYPE, c)):
            value = self.options[code]
            for i in range(0, max(len(value), 1), 255):  # RFC 3396 split of long options
                chunk = value[i : i + 255]
                opts += bytes([code, len(chunk)]) + chunk
        opts.append(OPT_END)
        out = head + bytes(opts)
        return out.ljust(300, b"\0")  # BOOTP minimum; some relays drop shorter datagrams


def _parse_options(buf: bytes) -> dict[int, bytes]:
    options: dict[int, bytes] = {}
    i = 0
    while i < len(buf):
        code = buf[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            break
        if i + 1 >= len(buf):
            raise ValueError("truncated option")
        length = buf[i + 1]
        value = buf[i + 2 : i + 2 + length]
        if len(value) != length:
            raise ValueError(f"option {code} truncated")
        options[code] = options.get(code, b"") + value  # RFC 3396: repeated options concatenate
        i += 2 + length
    return options


# --- the protocol logic (no sockets) --------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    packet: DhcpPacket
    dest: str  # IPv4 address to send to ("255.255.255.255" for broadcast)
    port: int


@dataclass(frozen=True)
class DhcpEvent:
    at: float
    kind: str  # discover, offer, request, ack, nak, release, decline, inform, ignored
    mac: str
    ip: str | None
    detail: str = ""


@dataclass(frozen=True)
class Binding:
    mac: str
    ip: str
    expires_at: float


class DhcpResponder:
    """Decides the answer to each request; thread-safe, so leases can change while serving."""

    def __init__(self, server_ip: str, leases: Iterable[Lease] = (), *, max_events: int = 1000) -> None:
        self.server_ip = str(_v4(server_ip, "server ip"))
        self._lock = threading.Lock()
        self._leases: dict[str, Lease] = {}
        self._bindings: dict[str, Binding] = {}
        self.events: deque[DhcpEvent] = deque(maxlen=max_events)
        # called (in the server's thread: it must return at once) with a DISCOVER from a MAC without a lease
        self.on_unknown: Callable[[DhcpPacket], None] | None = None
        self.replace_leases(leases)

    # leases --------------------------------------------------------------------------------

    def set_lease(self, lease: Lease) -> None:
        with self._lock:
            self._check_unique(lease, self._leases)
            self._leases[lease.mac] = lease
            b = self._bindings.get(lease.mac)
            if b is not None and b.ip != lease.ip:
                del self._bindings[lease.mac]  # the old address is no longer this guest's

    def remove_lease(self, mac: str) -> None:
        mac = mac.lower()
        with self._lock:
            self._leases.pop(mac, None)
            self._bindings.pop(mac, None)

    def replace_leases(self, leases: Iterable[Lease]) -> None:
        new: dict[str, Lease] = {}
        for lease in leases:
            if lease.mac in new:
                raise DhcpConfigError(f"two leases for MAC {lease.mac}")
            self._check_unique(lease, new)
            new[lease.mac] = lease
        with self._lock:
            self._leases = new
            self._bindings = {m: b for m, b in self._bindings.items() if m in new and new[m].ip == b.ip}

    def leases(self) -> dict[str, Lease]:
        with self._lock:
            return dict(self._leases)

    def bindings(self) -> dict[str, Binding]:
        """Addresses acknowledged and not yet released or expired."""
        now = time.time()
        with self._lock:
            return {m: b for m, b in self._bindings.items() if b.expires_at > now}

    # protocol ------------------------------------------------------------------------------

    def handle(self, req: DhcpPacket) -> Reply | None:
        if req.op != 1:
            return None
        mtype = req.msg_type
        mac = req.mac
        if mtype is None:
            self._event("ignored", mac, None, "BOOTP request without DHCP message type")
            return None
        with self._lock:
            lease = self._leases.get(mac)
        kind = MSG_NAMES.get(mtype, f"type-{mtype}")
        if lease is None:
            self._event("ignored", mac, None, f"unknown MAC ({kind})")
            if mtype == DISCOVER and self.on_unknown is not None:
                try:
                    self.on_unknown(req)
                except Exception:  # a listener's bug must not stop the server
                    log.exception("on_unknown listener failed for %s", mac)
            return None
        if mtype == DISCOVER:
            self._event("discover", mac, req.ip_option(OPT_REQUESTED_IP))
            return self._answer(req, lease, OFFER)
        if mtype == REQUEST:
            return self._request(req, lease)
        if mtype == RELEASE:
            with self._lock:
                b = self._bindings.get(mac)
                if b is not None and b.ip == req.ciaddr:
                    del self._bindings[mac]
            self._event("release", mac, req.ciaddr)
            return None
        if mtype == DECLINE:
            ip = req.ip_option(OPT_REQUESTED_IP)
            log.warning("guest %s declined %s: the address is in use by someone else", mac, ip)
            with self._lock:
                self._bindings.pop(mac, None)
            self._event("decline", mac, ip)
            return None
        if mtype == INFORM:
            self._event("inform", mac, req.ciaddr)
            return self._answer(req, lease, ACK, inform=True)
        self._event("ignored", mac, None, f"unexpected {kind}")
        return None

    # private -------------------------------------------------------------------------------

    def _request(self, req: DhcpPacket, lease: Lease) -> Reply | None:
        mac = req.mac
        server_id = req.ip_option(OPT_SERVER_ID)
        requested = req.ip_option(OPT_REQUESTED_IP)
        if server_id is not None:
            state, wanted = "selecting", requested
            if server_id != self.server_ip:
                self._event("ignored", mac, requested, f"client selected server {server_id}")
                return None
        elif requested is not None:
            state, wanted = "init-reboot", requested
        elif req.ciaddr != "0.0.0.0":
            state, wanted = "renewing", req.ciaddr
        else:
            state, wanted = "malformed", None
        self._event("request", mac, wanted, state)
        if wanted != lease.ip:
            return self._nak(
                req, lease, f"address {wanted} is not yours" if wanted else "no address requested"
            )
        return self._answer(req, lease, ACK)

    def _answer(self, req: DhcpPacket, lease: Lease, mtype: int, *, inform: bool = False) -> Reply:
        opts: dict[int, bytes] = {
            OPT_MSG_TYPE: bytes([mtype]),
            OPT_SERVER_ID: socket.inet_aton(self.server_ip),
            OPT_SUBNET_MASK: socket.inet_aton(lease.netmask),
            OPT_BROADCAST: socket.inet_aton(lease.broadcast),
        }
        if not inform:
            opts[OPT_LEASE_TIME] = struct.pack("!I", lease.lease_time)
            opts[OPT_T1] = struct.pack("!I", lease.lease_time // 2)
            opts[OPT_T2] = struct.pack("!I", lease.lease_time * 7 // 8)
        if lease.gateway:
            opts[OPT_ROUTER] = socket.inet_aton(lease.gateway)
        if lease.dns:
            opts[OPT_DNS] = b"".join(socket.inet_aton(d) for d in lease.dns)
        if lease.hostname:
            opts[OPT_HOSTNAME] = lease.hostname.encode()
        if lease.domain:
            opts[OPT_DOMAIN] = lease.domain.encode()
        if lease.mtu:
            opts[OPT_MTU] = struct.pack("!H", lease.mtu)
        siaddr, file = "0.0.0.0", b""
        if lease.bootfile:
            ipxe = b"iPXE" in req.options.get(OPT_USER_CLASS, b"")
            file = (lease.ipxe_bootfile if ipxe and lease.ipxe_bootfile else lease.bootfile).encode()
            opts[OPT_BOOTFILE] = file
            if lease.next_server:
                siaddr = lease.next_server
                opts[OPT_TFTP_SERVER] = lease.next_server.encode()
            if req.options.get(OPT_VENDOR_CLASS, b"").startswith(b"PXEClient"):
                # iPXE "no-pxedhcp": do not wait ~3 s for a ProxyDHCP offer that will never come
                opts[OPT_IPXE_ENCAP] = bytes([176, 1, 1])
        reply = DhcpPacket(
            op=2,
            xid=req.xid,
            chaddr=req.chaddr,
            flags=req.flags,
            ciaddr=req.ciaddr if inform or mtype == ACK else "0.0.0.0",
            yiaddr="0.0.0.0" if inform else lease.ip,
            siaddr=siaddr,
            giaddr=req.giaddr,
            file=file,
            options=opts,
        )
        if mtype == ACK and not inform:
            with self._lock:
                self._bindings[req.mac] = Binding(req.mac, lease.ip, time.time() + lease.lease_time)
        self._event(MSG_NAMES[mtype], req.mac, None if inform else lease.ip)
        return Reply(reply, *self._destination(req))

    def _nak(self, req: DhcpPacket, lease: Lease, why: str) -> Reply:
        reply = DhcpPacket(
            op=2,
            xid=req.xid,
            chaddr=req.chaddr,
            flags=req.flags | (BROADCAST_FLAG if req.giaddr != "0.0.0.0" else 0),
            giaddr=req.giaddr,
            options={
                OPT_MSG_TYPE: bytes([NAK]),
                OPT_SERVER_ID: socket.inet_aton(self.server_ip),
                OPT_MESSAGE: why.encode()[:255],
            },
        )
        with self._lock:
            self._bindings.pop(req.mac, None)
        self._event("nak", req.mac, lease.ip, why)
        if req.giaddr != "0.0.0.0":
            return Reply(reply, req.giaddr, DHCP_SERVER_PORT)
        return Reply(reply, "255.255.255.255", DHCP_CLIENT_PORT)  # RFC 2131 4.1: NAKs are broadcast

    @staticmethod
    def _destination(req: DhcpPacket) -> tuple[str, int]:
        if req.giaddr != "0.0.0.0":
            return req.giaddr, DHCP_SERVER_PORT
        if req.ciaddr != "0.0.0.0":
            return req.ciaddr, DHCP_CLIENT_PORT
        # the client has no address yet: broadcast (allowed by RFC 2131 4.1 instead of a raw
        # unicast to chaddr, and every client we test against accepts it)
        return "255.255.255.255", DHCP_CLIENT_PORT

    def _check_unique(self, lease: Lease, table: Mapping[str, Lease]) -> None:
        for other in table.values():
            if other.ip == lease.ip and other.mac != lease.mac:
                raise DhcpConfigError(f"{lease.ip} is already leased to {other.mac}")

    def _event(self, kind: str, mac: str, ip: str | None, detail: str = "") -> None:
        self.events.append(DhcpEvent(time.time(), kind, mac, ip, detail))
        log.debug("dhcp %s %s %s %s", kind, mac, ip or "", detail)


# --- the socket server ----------------------------------------------------------------------

_SIOCGIFADDR = 0x8915
_SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


def interface_ipv4(interface: str) -> str | None:
    """The primary IPv4 address of ``interface``, or None if it has none (or does not exist)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", interface.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(res[20:24])


class DhcpServer:
    """Serves ``DhcpResponder`` answers on one interface (a bridge, usually) from a thread."""

    def __init__(
        self,
        interface: str,
        leases: Iterable[Lease] = (),
        *,
        server_ip: str | None = None,
        port: int = DHCP_SERVER_PORT,
        client_port: int = DHCP_CLIENT_PORT,
    ) -> None:
        if not interface or len(interface.encode()) > 15:
            raise DhcpConfigError(f"bad interface name {interface!r}")
        ip = server_ip or interface_ipv4(interface)
        if ip is None:
            raise DhcpConfigError(
                f"interface {interface} has no IPv4 address (or does not exist); give server_ip"
            )
        self.interface = interface
        self.port = port
        self.client_port = client_port
        self.responder = DhcpResponder(ip, leases)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop_r, self._stop_w = socket.socketpair()

    # convenience pass-throughs, so the agent holds one object
    def set_lease(self, lease: Lease) -> None:
        self.responder.set_lease(lease)

    def remove_lease(self, mac: str) -> None:
        self.responder.remove_lease(mac)

    def replace_leases(self, leases: Iterable[Lease]) -> None:
        self.responder.replace_leases(leases)

    @property
    def events(self) -> deque[DhcpEvent]:
        return self.responder.events

    def start(self) -> None:
        if self._thread is not None:
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            # one server per wire: several sockets on port 67, each tied to its own interface
            s.setsockopt(socket.SOL_SOCKET, _SO_BINDTODEVICE, self.interface.encode())
            s.bind(("0.0.0.0", self.port))
        except OSError as exc:
            s.close()
            raise DhcpConfigError(f"cannot listen for DHCP on {self.interface}:{self.port}: {exc}") from None
        self._sock = s
        self._thread = threading.Thread(target=self._serve, name=f"dhcp-{self.interface}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop_w.send(b"x")
        self._thread.join(5)
        self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        self.stop()
        self._stop_r.close()
        self._stop_w.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        assert self._sock is not None
        sock = self._sock
        while True:
            ready, _, _ = select.select([sock, self._stop_r], [], [])
            if self._stop_r in ready:
                self._stop_r.recv(16)
                return
            try:
                data, _addr = sock.recvfrom(4096)
            except OSError:
                continue
            try:
                req = DhcpPacket.parse(data)
            except ValueError as exc:
                log.debug("dropping malformed DHCP datagram on %s: %s", self.interface, exc)
                continue
            try:
                reply = self.responder.handle(req)
            except Exception:  # one bad packet must not stop the wire's DHCP
                log.exception("DHCP handler failed on %s", self.interface)
                continue
            if reply is None:
                continue
            port = self.client_port if reply.port == DHCP_CLIENT_PORT else self.port
            try:
                sock.sendto(reply.packet.encode(), (reply.dest, port))
            except OSError as exc:
                log.warning("DHCP reply to %s via %s failed: %s", reply.dest, self.interface, exc)
