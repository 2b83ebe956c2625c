"""The DHCP decision logic, packet by packet (the socket server is tested with real clients in
tests/integration/virt/test_virt_dhcp.py)."""

from __future__ import annotations

import socket
import struct

import pytest

from core.agent.dhcp import (
    ACK,
    DISCOVER,
    INFORM,
    NAK,
    OFFER,
    RELEASE,
    REQUEST,
    DhcpConfigError,
    DhcpPacket,
    DhcpResponder,
    Lease,
)

MAC = "52:54:00:aa:00:01"
SERVER = "10.9.0.1"
LEASE = Lease(
    mac=MAC,
    ip="10.9.0.50",
    prefixlen=24,
    gateway="10.9.0.1",
    dns=("10.9.0.2", "1.1.1.1"),
    lease_time=600,
    hostname="vm1",
    domain="example.org",
    mtu=1450,
)


def pkt(mtype: int, mac: str = MAC, *, ciaddr: str = "0.0.0.0", **opts: str) -> DhcpPacket:
    options = {53: bytes([mtype])}
    if "requested" in opts:
        options[50] = socket.inet_aton(opts["requested"])
    if "server_id" in opts:
        options[54] = socket.inet_aton(opts["server_id"])
    if "vendor" in opts:
        options[60] = opts["vendor"].encode()
    if "user_class" in opts:
        options[77] = opts["user_class"].encode()
    p = DhcpPacket(
        op=1, xid=0x1234, chaddr=bytes.fromhex(mac.replace(":", "")), ciaddr=ciaddr, options=options
    )
    return DhcpPacket.parse(p.encode())  # through the wire format, as the server sees it


@pytest.fixture
def r() -> DhcpResponder:
    return DhcpResponder(SERVER, [LEASE])


def test_offer_carries_exactly_the_lease(r: DhcpResponder) -> None:
    reply = r.handle(pkt(DISCOVER))
    assert reply is not None and (reply.dest, reply.port) == ("255.255.255.255", 68)
    o = DhcpPacket.parse(reply.packet.encode())
    assert (o.op, o.xid, o.mac, o.yiaddr, o.msg_type) == (2, 0x1234, MAC, "10.9.0.50", OFFER)
    assert o.ip_option(54) == SERVER and o.ip_option(1) == "255.255.255.0" and o.ip_option(3) == "10.9.0.1"
    assert o.ip_option(28) == "10.9.0.255"
    assert o.options[6] == socket.inet_aton("10.9.0.2") + socket.inet_aton("1.1.1.1")
    assert struct.unpack("!I", o.options[51])[0] == 600
    assert struct.unpack("!I", o.options[58])[0] == 300 and struct.unpack("!I", o.options[59])[0] == 525
    assert (
        o.options[12] == b"vm1"
        and o.options[15] == b"example.org"
        and struct.unpack("!H", o.options[26])[0] == 1450
    )
    assert 66 not in o.options and 67 not in o.options and o.siaddr == "0.0.0.0"


def test_select_then_ack(r: DhcpResponder) -> None:
    reply = r.handle(pkt(REQUEST, requested="10.9.0.50", server_id=SERVER))
    assert reply is not None and reply.packet.msg_type == ACK and reply.packet.yiaddr == "10.9.0.50"
    assert r.bindings()[MAC].ip == "10.9.0.50"
    assert [e.kind for e in r.events] == ["request", "ack"] and r.events[0].detail == "selecting"


def test_request_for_another_server_is_silent(r: DhcpResponder) -> None:
    assert r.handle(pkt(REQUEST, requested="10.9.0.50", server_id="10.9.0.254")) is None


def test_renew_is_unicast_ack(r: DhcpResponder) -> None:
    reply = r.handle(pkt(REQUEST, ciaddr="10.9.0.50"))
    assert (
        reply is not None and reply.packet.msg_type == ACK and (reply.dest, reply.port) == ("10.9.0.50", 68)
    )
    assert r.events[0].detail == "renewing"


@pytest.mark.parametrize(
    "request_pkt",
    [
        lambda: pkt(REQUEST, requested="10.9.0.99"),  # INIT-REBOOT with a foreign address
        lambda: pkt(REQUEST, requested="10.9.0.99", server_id=SERVER),
        lambda: pkt(REQUEST, ciaddr="10.9.0.99"),  # renewing an address that is not the guest's
        lambda: pkt(REQUEST),
    ],
)
def test_foreign_address_gets_nak(r: DhcpResponder, request_pkt) -> None:  # type: ignore[no-untyped-def]
    r.handle(pkt(REQUEST, requested="10.9.0.50"))
    reply = r.handle(request_pkt())
    assert reply is not None
    assert reply.packet.msg_type == NAK and reply.packet.yiaddr == "0.0.0.0"
    assert (reply.dest, reply.port) == ("255.255.255.255", 68)
    assert MAC not in r.bindings()


def test_unknown_mac_is_ignored(r: DhcpResponder) -> None:
    other = "52:54:00:aa:00:99"
    for p in (pkt(DISCOVER, other), pkt(REQUEST, other, requested="10.9.0.50"), pkt(INFORM, other)):
        assert r.handle(p) is None
    assert {e.kind for e in r.events} == {"ignored"}


def test_release_and_inform(r: DhcpResponder) -> None:
    r.handle(pkt(REQUEST, requested="10.9.0.50"))
    assert r.handle(pkt(RELEASE, ciaddr="10.9.0.50")) is None
    assert r.bindings() == {}
    reply = r.handle(pkt(INFORM, ciaddr="10.9.0.50"))
    assert reply is not None and reply.packet.msg_type == ACK and reply.packet.yiaddr == "0.0.0.0"
    assert 51 not in reply.packet.options and reply.dest == "10.9.0.50"


def test_runtime_updates(r: DhcpResponder) -> None:
    r.handle(pkt(REQUEST, requested="10.9.0.50"))
    r.set_lease(Lease(mac=MAC, ip="10.9.0.60", prefixlen=24))
    assert MAC not in r.bindings()  # its old address is gone
    reply = r.handle(pkt(REQUEST, ciaddr="10.9.0.50"))
    assert reply is not None and reply.packet.msg_type == NAK
    assert r.handle(pkt(DISCOVER)).packet.yiaddr == "10.9.0.60"  # type: ignore[union-attr]
    r.remove_lease(MAC)
    assert r.handle(pkt(DISCOVER)) is None
    with pytest.raises(DhcpConfigError, match="already leased"):
        r.replace_leases([LEASE, Lease(mac="52:54:00:aa:00:02", ip=LEASE.ip, prefixlen=24)])


def test_pxe_lease(r: DhcpResponder) -> None:
    r.set_lease(Lease(mac=MAC, ip="10.9.0.50", prefixlen=24, next_server="10.9.0.1", bootfile="boot.ipxe"))
    reply = r.handle(pkt(DISCOVER, vendor="PXEClient:Arch:00000:UNDI:002001"))
    assert reply is not None
    o = DhcpPacket.parse(reply.packet.encode())
    assert o.siaddr == "10.9.0.1" and o.file == b"boot.ipxe"
    assert o.options[67] == b"boot.ipxe" and o.options[66] == b"10.9.0.1"
    assert o.options[175] == bytes([176, 1, 1])  # iPXE: skip the ProxyDHCP wait


def test_pxe_chainload_legacy_rom_gets_ipxe_and_ipxe_gets_its_script(r: DhcpResponder) -> None:
    r.set_lease(Lease(mac=MAC, ip="10.9.0.50", prefixlen=24, next_server="10.9.0.1", bootfile="undionly.kpxe",
                      ipxe_bootfile="52-54-00-aa-00-01.ipxe"))
    legacy = r.handle(pkt(DISCOVER, vendor="PXEClient:Arch:00000:UNDI:002001"))
    ipxe = r.handle(pkt(DISCOVER, vendor="PXEClient:Arch:00000:UNDI:002001", user_class="iPXE"))
    assert legacy is not None and ipxe is not None
    assert DhcpPacket.parse(legacy.packet.encode()).options[67] == b"undionly.kpxe"
    o = DhcpPacket.parse(ipxe.packet.encode())
    assert o.options[67] == b"52-54-00-aa-00-01.ipxe" and o.file == b"52-54-00-aa-00-01.ipxe"
    with pytest.raises(DhcpConfigError, match="without bootfile"):
        Lease(mac=MAC, ip="10.9.0.50", prefixlen=24, ipxe_bootfile="x.ipxe")


def test_relay_replies_go_to_the_relay(r: DhcpResponder) -> None:
    p = pkt(DISCOVER)
    p.giaddr = "10.9.0.254"
    reply = r.handle(p)
    assert reply is not None and (reply.dest, reply.port) == ("10.9.0.254", 67)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01" * 100,
        DhcpPacket(op=1, xid=1, chaddr=b"\0" * 6).encode()[:240] + b"XXXX",
        DhcpPacket(op=1, xid=1, chaddr=b"\0" * 6).encode()[:240] + b"\x63\x82\x53\x63\x35\x05\x01",
    ],
)
def test_malformed_packets_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        DhcpPacket.parse(data)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mac": "zz"}, "bad MAC"),
        ({"ip": "10.0.0.300"}, "bad ip"),
        ({"prefixlen": 33}, "prefixlen"),
        ({"gateway": "192.168.0.1"}, "outside"),
        ({"dns": ("x",)}, "bad dns"),
        ({"lease_time": 1}, "lease_time"),
        ({"bootfile": ""}, "bootfile"),
    ],
)
def test_bad_leases(kwargs: dict, message: str) -> None:
    with pytest.raises(DhcpConfigError, match=message):
        Lease(**({"mac": MAC, "ip": "10.0.0.5", "prefixlen": 24} | kwargs))
