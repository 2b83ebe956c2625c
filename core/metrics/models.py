"""Usage history: one row per object (server or host), resolution and time bucket.

Rows are averages of the samples agents sent in their bucket (``n`` of them): minute buckets are
kept a day, hour buckets a month (core/metrics/history.py), so a guest has at most
1440 + 720 rows, whatever its age.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, StandardMixin, str36, str64, str255
from core.region.models.base import OwnedMixin, ResourceMixin

# what a sample may carry, per object type (the columns below); units in their names
SERVER_METRICS = ("cpu_percent", "mem_mb", "disk_read_bps", "disk_write_bps", "net_rx_bps", "net_tx_bps")
HOST_METRICS = ("cpu_percent", "mem_mb", "disk_used_percent", "load_1m", "net_rx_bps", "net_tx_bps")
ALL_METRICS = tuple(dict.fromkeys(SERVER_METRICS + HOST_METRICS))


class MetricSample(Base):
    __tablename__ = "metric_samples"
    # the retention purge deletes by (resolution, ts) across every object
    __table_args__ = (Index("ix_metric_samples_resolution_ts", "resolution", "ts"),)

    obj_id: Mapped[str36] = mapped_column(primary_key=True)
    resolution: Mapped[int] = mapped_column(Integer, primary_key=True)  # seconds: 60 or 3600
    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # bucket start, unix seconds (UTC)
    obj_type: Mapped[str] = mapped_column(String(16))  # server | host
    n: Mapped[int] = mapped_column(Integer, default=1)
    cpu_percent: Mapped[float | None] = mapped_column(Float, default=None)
    mem_mb: Mapped[float | None] = mapped_column(Float, default=None)
    disk_read_bps: Mapped[float | None] = mapped_column(Float, default=None)
    disk_write_bps: Mapped[float | None] = mapped_column(Float, default=None)
    net_rx_bps: Mapped[float | None] = mapped_column(Float, default=None)
    net_tx_bps: Mapped[float | None] = mapped_column(Float, default=None)
    disk_used_percent: Mapped[float | None] = mapped_column(Float, default=None)
    load_1m: Mapped[float | None] = mapped_column(Float, default=None)


# ---- alerting (Cloudpods' monitor service names: commonalerts, alertrecords; notify's notifyconfigs) ----
class Commonalert(ResourceMixin, OwnedMixin, Base):
    """An alert rule: ``reduce(metric)`` over the last ``window_seconds`` compared with ``threshold``,
    for the servers of its project (scope project), one server or one host. ``for_seconds``: how
    long the condition must hold (state pending) before it alerts."""

    __tablename__ = "commonalerts"

    enabled: Mapped[bool] = mapped_column(default=True)
    scope: Mapped[str] = mapped_column(String(16), default="project")  # project | server | host
    res_type: Mapped[str] = mapped_column(String(16), default="server")  # server | host
    res_id: Mapped[str] = mapped_column(String(36), default="")  # scope server/host: the one watched
    metric: Mapped[str] = mapped_column(String(64))
    reduce: Mapped[str] = mapped_column(String(8), default="avg")  # avg | max | min
    comparator: Mapped[str] = mapped_column(String(4))  # > >= < <= ==
    threshold: Mapped[float] = mapped_column(Float)
    window_seconds: Mapped[int] = mapped_column(Integer, default=300)
    for_seconds: Mapped[int] = mapped_column(Integer, default=0)
    level: Mapped[str] = mapped_column(String(16), default="normal")  # normal | important | fatal
    notify_configs: Mapped[list[str]] = mapped_column(JSON, default=list)  # notifyconfig ids
    last_eval_at: Mapped[datetime | None] = mapped_column(default=None)


class CommonalertState(Base):
    """Where one rule stands for one watched object; kept so a restart neither forgets an alert nor
    fires it twice."""

    __tablename__ = "commonalert_states"

    alert_id: Mapped[str36] = mapped_column(primary_key=True)
    res_id: Mapped[str36] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="ok")  # ok | pending | alerting
    since: Mapped[float] = mapped_column(Float, default=0.0)  # unix seconds the state began
    value: Mapped[float | None] = mapped_column(Float, default=None)


class Alertrecord(StandardMixin, Base):
    """One state change of one rule on one object (the alert history)."""

    __tablename__ = "alertrecords"

    alert_id: Mapped[str36] = mapped_column(index=True)
    alert_name: Mapped[str255] = mapped_column(default="")
    level: Mapped[str] = mapped_column(String(16), default="normal")
    state: Mapped[str] = mapped_column(String(16))  # the new state
    prev_state: Mapped[str] = mapped_column(String(16), default="ok")
    res_type: Mapped[str] = mapped_column(String(16), default="server")
    res_id: Mapped[str36] = mapped_column(default="")
    res_name: Mapped[str255] = mapped_column(default="")
    metric: Mapped[str] = mapped_column(String(64), default="")
    value: Mapped[float | None] = mapped_column(Float, default=None)
    comparator: Mapped[str] = mapped_column(String(4), default="")
    threshold: Mapped[float | None] = mapped_column(Float, default=None)
    # none (nothing to send) | queued | sent | failed (the worst delivery of this record)
    notify_status: Mapped[str] = mapped_column(String(16), default="none")
    tenant_id: Mapped[str64] = mapped_column(index=True, default="")
    domain_id: Mapped[str64] = mapped_column(default="default")


class AlertNotification(StandardMixin, Base):
    """One delivery of one record through one notify config: queued until sent, retried with
    backoff, ``failed`` with its last error after the last attempt (never dropped)."""

    __tablename__ = "alert_notifications"
    __table_args__ = (Index("ix_alert_notifications_status_next", "status", "next_attempt_at"),)

    alertrecord_id: Mapped[str36] = mapped_column(index=True)
    notify_config_id: Mapped[str36] = mapped_column(default="")
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float, default=0.0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class NotifyConfig(ResourceMixin, OwnedMixin, Base):
    """Where alerts go: ``type`` email (SMTP, STARTTLS) or webhook (HMAC-signed POST). ``content``
    holds the non-secret settings; ``secret`` (SMTP password or webhook key) is sealed with the
    credential keys and never returned."""

    __tablename__ = "notifyconfigs"

    type: Mapped[str] = mapped_column(String(16))
    content: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secret: Mapped[str] = mapped_column(Text, default="")
