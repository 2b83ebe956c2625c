"""The alert evaluator on a manual clock: ok -> pending -> alerting -> ok with a record per change,
notifications queued only for alerting and its end, retried with backoff and kept as ``failed``;
a second run (a restarted controller) never fires an alert twice."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.db.engine import Database
from core.metrics import notify
from core.metrics.evaluator import evaluate, run
from core.metrics.history import ingest
from core.metrics.models import AlertNotification, Alertrecord, Commonalert, CommonalertState, NotifyConfig

T0 = 1_800_000_000  # a whole hour


@pytest.fixture
def db(tmp_path: Path) -> Database:
    import core.db.models  # noqa: F401
    from core.db.base import Base
    from core.keystone.credkeys import cipher_for, use_cipher

    use_cipher(cipher_for(tmp_path))
    d = Database(f"sqlite:///{tmp_path / 'a.db'}")
    Base.metadata.create_all(d.engine)
    return d


def _server(s: Any, name: str, tenant: str = "p1") -> str:
    from core.region.models import Server

    row = Server(name=name, tenant_id=tenant, domain_id="default", status="running", vcpu_count=1, vmem_size=64)
    s.add(row)
    s.flush()
    return str(row.id)


def _cpu(s: Any, sid: str, cpu: float, now: float) -> None:
    ingest(s, "h1", {"guests": [{"id": sid, "cpu_percent": cpu}]}, {sid}, now=now)
    s.commit()


def _rule(s: Any, **kw: Any) -> Commonalert:
    args: dict[str, Any] = dict(name="hot", metric="cpu_percent", comparator=">", threshold=80.0, window_seconds=60,
                                for_seconds=120, scope="project", res_type="server", tenant_id="p1",
                                notify_configs=[], enabled=True, status="ready")
    args.update(kw)
    r = Commonalert(**args)
    s.add(r)
    s.commit()
    return r


def _states(s: Any) -> list[tuple[str, str]]:
    return [(r.state, r.prev_state) for r in s.scalars(select(Alertrecord).order_by(Alertrecord.created_at,
                                                                                   Alertrecord.id))]


def test_ok_pending_alerting_ok_with_history(db: Database) -> None:
    with db.session() as s:
        hot, cold = _server(s, "hot-1"), _server(s, "cold-1")
        _server(s, "other-tenant", tenant="p2")
        rule = _rule(s)
        _cpu(s, hot, 95, T0 + 5)
        _cpu(s, cold, 10, T0 + 5)
        assert evaluate(s, T0 + 10) == 1  # hot: ok -> pending; cold stays ok (no row, no record)
        st = {r.res_id: r.state for r in s.scalars(select(CommonalertState))}
        assert st == {hot: "pending"}
        _cpu(s, hot, 90, T0 + 65)
        assert evaluate(s, T0 + 70) == 0  # 60 s pending < for 120 s
        _cpu(s, hot, 92, T0 + 125)
        assert evaluate(s, T0 + 130) == 1  # held 120 s: alerting
        assert evaluate(s, T0 + 131) == 0  # a second pass (another replica, a restart) fires nothing again
        _cpu(s, hot, 20, T0 + 185)
        assert evaluate(s, T0 + 190) == 1  # back to ok
        assert _states(s) == [("pending", "ok"), ("alerting", "pending"), ("ok", "alerting")]
        rec = s.scalars(select(Alertrecord).where(Alertrecord.state == "alerting")).one()
        # the window (60 s back from T0+130) starts in the T0+60 bucket: avg(90, 92)
        assert rec.res_name == "hot-1" and rec.value == pytest.approx(91.0) and rec.alert_id == rule.id
        assert rec.tenant_id == "p1" and rec.notify_status == "none"


def test_pending_that_stops_holding_goes_back_to_ok_and_no_data_is_ok(db: Database) -> None:
    with db.session() as s:
        sid = _server(s, "blip")
        _rule(s, comparator=">=", threshold=50.0)
        _cpu(s, sid, 60, T0 + 5)
        evaluate(s, T0 + 10)
        _cpu(s, sid, 30, T0 + 65)  # the window's average: 45
        evaluate(s, T0 + 70)
        assert _states(s) == [("pending", "ok"), ("ok", "pending")]
        _cpu(s, sid, 99, T0 + 125)
        evaluate(s, T0 + 130)
        evaluate(s, T0 + 600)  # no samples in the window any more: the condition is false
        assert _states(s)[-2:] == [("pending", "ok"), ("ok", "pending")]


def test_notifications_queue_retry_with_backoff_and_end_failed(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []
    fail = {"on": True}
    attempts: list[str] = []

    def fake_webhook(content: dict[str, Any], secret: str, ev: dict[str, Any]) -> None:
        assert secret == "k" * 16  # unsealed for the send only
        attempts.append(ev["delivery_id"])
        if fail["on"]:
            raise notify.SendError("HTTP 503")
        sent.append(ev)

    # the real senders are exercised against real servers in tests/integration/test_alert_notify.py
    monkeypatch.setitem(notify.SENDERS, "webhook", fake_webhook)
    from core.keystone.credkeys import seal

    with db.session() as s:
        sid = _server(s, "n-1")
        cfg = NotifyConfig(name="hook", type="webhook", content={"url": "http://127.0.0.1:9/x"}, secret=seal("k" * 16),
                           tenant_id="p1", status="ready")
        s.add(cfg)
        s.flush()
        _rule(s, for_seconds=0, notify_configs=[cfg.id])
        _cpu(s, sid, 99, T0 + 5)
        assert run(s, T0 + 10) == 2  # one change, one delivery attempted
        n = s.scalars(select(AlertNotification)).one()
        assert (n.status, n.attempts, n.next_attempt_at, n.last_error) == ("queued", 1, T0 + 10 + 30, "HTTP 503")
        assert notify.deliver(s, T0 + 20) == 0  # not due yet
        assert notify.deliver(s, T0 + 40) == 1 and n.attempts == 2 and n.next_attempt_at == T0 + 40 + 60
        notify.deliver(s, T0 + 100)
        notify.deliver(s, T0 + 220)
        s.refresh(n)
        assert (n.status, n.attempts) == ("failed", notify.MAX_ATTEMPTS)
        # every attempt of one delivery carries its id: what a receiver dedupes a resend on
        assert attempts == [n.id] * notify.MAX_ATTEMPTS
        assert s.scalars(select(Alertrecord)).one().notify_status == "failed"
        # the end of the alert is queued and, the peer back, delivered once
        fail["on"] = False
        _cpu(s, sid, 1, T0 + 3605)
        run(s, T0 + 3610)
        assert [e["state"] for e in sent] == ["ok"] and sent[0]["prev_state"] == "alerting"
        assert sent[0]["delivery_id"] not in attempts[:-1]  # another delivery, another id
        ok = s.scalars(select(Alertrecord).where(Alertrecord.state == "ok")).one()
        assert ok.notify_status == "sent"
        assert notify.deliver(s, T0 + 9999) == 0


def test_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    import hashlib
    import hmac

    want = hmac.new(b"secret-key", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert notify.sign("secret-key", "1700000000", b"{}") == f"sha256={want}"
