"""Alert notifications: mail over SMTP (STARTTLS) and HMAC-signed webhooks, delivered with retries.

The evaluator queues one ``AlertNotification`` per (record, notify config) in the transaction that
records the state change, so a crash can lose no alert; ``deliver`` (run by the same periodic job)
sends what is due, outside any transaction, and records the outcome: ``sent``, or after a failure a
later attempt (backoff ``BACKOFF_S * 2**(attempt-1)``) until ``MAX_ATTEMPTS``, then ``failed`` with
the last error. A crash between a send and its record sends that one again: delivery is at least
once, so every notification carries a ``delivery_id`` (the delivery row's id, the same on every
attempt) that a receiver dedupes on: in the event (signed with the webhook body), as the webhook's
``X-Cloudpods-Delivery`` header and as the mail's Message-ID ``<delivery_id@cloudpods-one>``.

Webhook signature: ``X-Cloudpods-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``
with ``X-Cloudpods-Timestamp: <unix seconds>`` (the receiver checks both; the timestamp bounds replays).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.metrics.models import AlertNotification, Alertrecord, NotifyConfig

log = logging.getLogger("cloudpods.notify")

MAX_ATTEMPTS = 4
BACKOFF_S = 30.0
SEND_TIMEOUT_S = 10.0
BATCH = 50  # deliveries per run: a run stays well inside its lease even when every peer times out
SIGNATURE_HEADER = "X-Cloudpods-Signature"
TIMESTAMP_HEADER = "X-Cloudpods-Timestamp"
DELIVERY_HEADER = "X-Cloudpods-Delivery"


class SendError(Exception):
    """A delivery the peer refused or could not take (its message is recorded)."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def event_of(rec: Alertrecord) -> dict[str, Any]:
    """What a notification says about a record (the webhook body; the mail's text)."""
    return {"record_id": rec.id, "alert_id": rec.alert_id, "alert_name": rec.alert_name, "level": rec.level,
            "state": rec.state, "prev_state": rec.prev_state, "res_type": rec.res_type, "res_id": rec.res_id,
            "res_name": rec.res_name, "metric": rec.metric, "value": rec.value, "comparator": rec.comparator,
            "threshold": rec.threshold, "time": rec.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")}


def subject_of(ev: dict[str, Any]) -> str:
    what = "ALERTING" if ev["state"] == "alerting" else "resolved"
    on = ev['res_name'] or ev['res_id']
    head = f"[cloudpods] {what}: {ev['alert_name']} ({ev['level']}) on {ev['res_type']} {on}"
    if ev["value"] is None:
        return f"{head}: {ev['metric']} has no samples"
    return f"{head}: {ev['metric']} {ev['value']:.3g} {ev['comparator']} {ev['threshold']:.3g}"


def send_email(content: dict[str, Any], password: str, ev: dict[str, Any]) -> None:
    """SMTP with STARTTLS (``ssl``: implicit TLS instead; ``starttls: false`` only for a relay on
    loopback). The server's certificate is verified (``ca_cert``: a PEM bundle to trust besides
    the system's)."""
    msg = EmailMessage()
    msg["Subject"] = subject_of(ev)
    msg["From"] = content["sender"]
    msg["To"] = ", ".join(content["to"])
    if ev.get("delivery_id"):
        msg["Message-ID"] = f"<{ev['delivery_id']}@cloudpods-one>"  # a resend is the same message
    msg.set_content(json.dumps(ev, indent=2, sort_keys=True))
    ctx = ssl.create_default_context()
    if content.get("ca_cert"):
        ctx.load_verify_locations(cadata=content["ca_cert"])
    host, port = content["hostname"], int(content["hostport"])
    try:
        if content.get("ssl"):
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=SEND_TIMEOUT_S, context=ctx)
        else:
            smtp = smtplib.SMTP(host, port, timeout=SEND_TIMEOUT_S)
        with smtp:
            if not content.get("ssl") and content.get("starttls", True):
                smtp.starttls(context=ctx)
            if content.get("username"):
                # no initial response: some servers (aiosmtpd) stall on AUTH LOGIN with one, and a
                # wrong password would then be a 10 s timeout instead of its 535
                smtp.login(content["username"], password, initial_response_ok=False)
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        raise SendError(f"smtp {host}:{port}: {type(exc).__name__}: {exc}") from None


def send_webhook(content: dict[str, Any], secret: str, ev: dict[str, Any]) -> None:
    import httpx

    body = json.dumps(ev, sort_keys=True, separators=(",", ":")).encode()
    ts = str(int(time.time()))
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body)}
    if ev.get("delivery_id"):
        headers[DELIVERY_HEADER] = str(ev["delivery_id"])
    try:
        r = httpx.post(content["url"], content=body, headers=headers, timeout=SEND_TIMEOUT_S,
                       follow_redirects=False)
    except httpx.HTTPError as exc:
        raise SendError(f"webhook {content['url']}: {type(exc).__name__}: {exc}") from None
    if not 200 <= r.status_code < 300:
        raise SendError(f"webhook {content['url']}: HTTP {r.status_code} {r.text[:200]}")


SENDERS: dict[str, Callable[[dict[str, Any], str, dict[str, Any]], None]] = {
    "email": send_email, "webhook": send_webhook}


def send(cfg: NotifyConfig, ev: dict[str, Any]) -> None:
    from core.keystone.credkeys import unseal

    secret = unseal(cfg.secret) if cfg.secret else ""
    SENDERS[cfg.type](dict(cfg.content or {}), secret, ev)


def _roll_up(session: Session, record_id: str) -> None:
    """The record's ``notify_status``: failed if any delivery failed, queued while any waits, else sent."""
    got = set(session.scalars(select(AlertNotification.status).where(AlertNotification.alertrecord_id == record_id)))
    rec = session.get(Alertrecord, record_id)
    if rec is not None:
        rec.notify_status = next((s for s in ("failed", "queued", "sent") if s in got), "none")


def deliver(session: Session, now: float | None = None) -> int:
    """Send the deliveries that are due; returns how many were attempted. Commits per delivery."""
    now = time.time() if now is None else now
    due = list(session.scalars(select(AlertNotification.id).where(
        AlertNotification.status == "queued", AlertNotification.next_attempt_at <= now)
        .order_by(AlertNotification.next_attempt_at).limit(BATCH)))
    session.commit()  # no transaction stays open across the network
    for nid in due:
        n = session.get(AlertNotification, nid)
        if n is None or n.status != "queued":
            continue
        rec = session.get(Alertrecord, n.alertrecord_id)
        cfg = session.get(NotifyConfig, n.notify_config_id)
        ev = {**event_of(rec), "delivery_id": n.id} if rec is not None else None
        session.commit()
        error = ""
        if cfg is None or ev is None:
            error = "the notify config was deleted"
        else:
            try:
                send(cfg, ev)
            except SendError as exc:
                error = str(exc)
            except Exception as exc:  # a bad stored config, an undecryptable secret: recorded, never lost
                error = f"{type(exc).__name__}: {exc}"
        n = session.get(AlertNotification, nid)
        if n is None:
            continue
        n.attempts += 1
        if not error:
            n.status, n.sent_at, n.last_error = "sent", utcnow(), ""
        else:
            n.last_error = error[:2000]
            final = n.attempts >= MAX_ATTEMPTS or cfg is None
            n.status = "failed" if final else "queued"
            n.next_attempt_at = now + BACKOFF_S * 2 ** (n.attempts - 1)
            log.warning("alert notification %s attempt %d failed: %s", nid, n.attempts, error)
        _roll_up(session, n.alertrecord_id)
        session.commit()
    return len(due)
