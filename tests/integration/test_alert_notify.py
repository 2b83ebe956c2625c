"""Alert notifications against real receivers on loopback: an aiosmtpd server that requires
STARTTLS before AUTH (self-signed certificate, trusted through the notify config's ``ca_cert``) and
an HTTP receiver that verifies the HMAC-SHA256 signature; refusals become recorded errors."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.metrics.notify import SendError, send_email, send_webhook
from tests.support.controller import free_port
from tests.support.notify_peers import smtp_server, webhook_receiver

EV: dict[str, Any] = {"record_id": "r1", "alert_id": "a1", "alert_name": "hot-cpu", "level": "fatal",
                      "state": "alerting", "prev_state": "pending", "res_type": "server", "res_id": "s1",
                      "res_name": "web-1", "metric": "cpu_percent", "value": 97.5, "comparator": ">",
                      "threshold": 80.0, "time": "2026-12-07T05:00:00Z"}


def test_mail_over_starttls_with_auth_and_its_refusals(tmp_path: Path) -> None:
    with smtp_server(tmp_path) as smtp:
        content = {"hostname": "127.0.0.1", "hostport": smtp.port, "username": smtp.user, "sender": "cp@example.org",
                   "to": ["ops@example.org", "oncall@example.org"], "starttls": True, "ssl": False,
                   "ca_cert": smtp.ca_pem}
        send_email(content, smtp.password, EV)
        assert len(smtp.messages) == 1 and smtp.tls_sessions == [True]
        msg = smtp.messages[0]
        assert msg["To"] == "ops@example.org, oncall@example.org"
        assert "ALERTING: hot-cpu (fatal) on server web-1: cpu_percent 97.5 > 80" in msg["Subject"]
        assert '"res_id": "s1"' in msg.get_payload()
        # a delivery's id is its Message-ID: a resend after a crash is the same message to a mail client
        send_email(content, smtp.password, {**EV, "delivery_id": "d-42"})
        assert smtp.messages[1]["Message-ID"] == "<d-42@cloudpods-one>"
        with pytest.raises(SendError, match="535|uthentication"):
            send_email(content, "wrong", EV)
        with pytest.raises(SendError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
            send_email({**content, "ca_cert": ""}, smtp.password, EV)  # not trusted: never sent in clear
        # no AUTH offered before TLS: a password never goes in clear
        with pytest.raises(SendError, match="AUTH extension not supported"):
            send_email({**content, "starttls": False}, smtp.password, EV)
        assert len(smtp.messages) == 2
    with pytest.raises(SendError, match=f"127.0.0.1:{(p := free_port())}"):
        send_email({**content, "hostport": p}, "x", EV)


def test_webhook_signature_verified_by_the_receiver(tmp_path: Path) -> None:
    secret = "a-webhook-secret-of-32-chars-xx"
    with webhook_receiver(secret) as hook:
        send_webhook({"url": hook.url}, secret, EV)
        assert hook.events == [EV] and hook.rejected == 0
        send_webhook({"url": hook.url}, secret, {**EV, "delivery_id": "d-42"})  # signed body + header
        assert hook.deliveries == ["", "d-42"] and hook.events[1]["delivery_id"] == "d-42"
        with pytest.raises(SendError, match="HTTP 401"):
            send_webhook({"url": hook.url}, "another-secret-entirely", EV)
        assert hook.rejected == 1 and len(hook.events) == 2
    with pytest.raises(SendError, match="ConnectError"):
        send_webhook({"url": f"http://127.0.0.1:{free_port()}/x"}, secret, EV)
