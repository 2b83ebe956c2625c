"""Real receivers for alert notifications, on loopback:

- ``smtp_server()``: aiosmtpd with STARTTLS required before AUTH (a self-signed certificate for
  127.0.0.1 made here; ``ca_pem`` is what a notify config trusts), one user, messages collected;
- ``webhook_receiver(secret)``: an HTTP server that checks each POST's HMAC-SHA256 signature and
  timestamp the way a user's receiver would, keeping verified events and counting bad ones; with
  ``hold_first`` it keeps the first verified post unanswered until ``release`` is set (a delivery in
  flight, for killing its sender mid-send).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.controller import free_port
from tests.support.peers import need


def self_signed(dirpath: Path) -> tuple[Path, Path, str]:
    """(cert file, key file, cert PEM) for CN/SAN 127.0.0.1 and localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_file, key_file = dirpath / "smtp.crt", dirpath / "smtp.key"
    cert_file.write_text(pem)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file, pem


@dataclass
class Smtp:
    port: int
    ca_pem: str
    user: str
    password: str
    messages: list[Any] = field(default_factory=list)
    tls_sessions: list[bool] = field(default_factory=list)  # per message: was it inside TLS


@contextmanager
def smtp_server(tmp: Path, user: str = "alerts", password: str = "s3cret-pw") -> Iterator[Smtp]:
    try:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword
    except ImportError:
        need(False, "needs aiosmtpd (pip install cloudpods-one[dev])")
        raise
    cert, key, pem = self_signed(tmp)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    box = Smtp(port=free_port(), ca_pem=pem, user=user, password=password)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            from email import message_from_bytes

            box.messages.append(message_from_bytes(envelope.content))
            box.tls_sessions.append(session.ssl is not None)
            return "250 OK"

    def auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and data.login == user.encode() and data.password == password.encode()
        return AuthResult(success=ok, handled=False)  # handled=True would answer nothing

    ctl = Controller(Handler(), hostname="127.0.0.1", port=box.port, tls_context=ctx, require_starttls=True,
                     authenticator=auth, auth_required=True, auth_require_tls=True)
    ctl.start()
    try:
        yield box
    finally:
        ctl.stop()


@dataclass
class Webhook:
    url: str
    events: list[dict[str, Any]] = field(default_factory=list)  # verified ones only
    rejected: int = 0
    deliveries: list[str] = field(default_factory=list)  # X-Cloudpods-Delivery of every verified post
    held: threading.Event = field(default_factory=threading.Event)  # hold_first: the first post is in
    release: threading.Event = field(default_factory=threading.Event)  # hold_first: answer it now


@contextmanager
def webhook_receiver(secret: str, fail_first: int = 0, hold_first: bool = False) -> Iterator[Webhook]:
    """``fail_first``: answer the first N (verified) posts with 503, as a receiver being restarted.
    ``hold_first``: the first verified post is received (counted) but answered only once ``release``
    is set (or after 60 s)."""
    port = free_port()
    box = Webhook(url=f"http://127.0.0.1:{port}/hook")
    left = [fail_first]

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            ts = self.headers.get("X-Cloudpods-Timestamp", "")
            want = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
            if not (fresh and hmac.compare_digest(want, self.headers.get("X-Cloudpods-Signature", ""))):
                box.rejected += 1
                self.send_response(401)
            elif left[0] > 0:
                left[0] -= 1
                self.send_response(503)
            else:
                box.events.append(json.loads(body))
                box.deliveries.append(self.headers.get("X-Cloudpods-Delivery", ""))
                if hold_first and not box.held.is_set():
                    box.held.set()
                    box.release.wait(60)
                self.send_response(204)
            try:
                self.end_headers()
            except OSError:
                pass  # a held post's sender died meanwhile: nobody reads the answer

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield box
    finally:
        box.release.set()
        srv.shutdown()
        srv.server_close()
