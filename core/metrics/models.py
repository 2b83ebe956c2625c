"""Usage history: one row per object (server or host), resolution and time bucket.

Rows are averages of the samples agents sent in their bucket (``n`` of them): minute buckets are
kept a day, hour buckets a month (core/metrics/history.py), so a guest has at most
1440 + 720 rows, whatever its age.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, str36

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
