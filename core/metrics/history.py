"""Usage history: agents' samples in, downsampled series out.

    ingest(session, host, {"host": {...}, "guests": [{"id": ..., "cpu_percent": 3.5, ...}]}, now)
    query(session, server.id, "server", since_s=3600) -> {"resolution": 60, "series": [...]}

Each sample is folded into its minute bucket and its hour bucket (a running average, ``n`` samples
so far). ``purge`` (a periodic job) drops minute buckets older than a day and hour buckets older
than 30 days, so rows per object stay bounded. A query over the last day reads minute buckets,
anything longer hour buckets.
"""
from __future__ import annotations

import math
import time
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from core.errors import InputParameterError
from core.metrics.models import ALL_METRICS, HOST_METRICS, SERVER_METRICS, MetricSample

MINUTE, HOUR = 60, 3600
KEEP = {MINUTE: 24 * 3600, HOUR: 30 * 24 * 3600}
MAX_GUESTS_PER_PING = 5000


def _clean(raw: Any, allowed: tuple[str, ...]) -> dict[str, float]:
    """The known, finite numbers of one sample (anything else is dropped: an agent of another
    version may send more, and a NaN must not poison an average)."""
    out = {}
    if isinstance(raw, dict):
        for k in allowed:
            v = raw.get(k)
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                out[k] = float(v)
    return out


def ingest(session: Session, host_id: str, samples: Any, server_ids: set[str], now: float | None = None) -> int:
    """Fold a ping's samples in; guests not among ``server_ids`` (this host's servers) are ignored,
    so an agent can only write its own guests' history. Returns rows touched. Caller commits."""
    if not isinstance(samples, dict):
        return 0
    now = time.time() if now is None else now
    points: list[tuple[str, str, dict[str, float]]] = []
    host_vals = _clean(samples.get("host"), HOST_METRICS)
    if host_vals:
        points.append((host_id, "host", host_vals))
    guests = samples.get("guests")
    if isinstance(guests, list):
        for g in guests[:MAX_GUESTS_PER_PING]:
            if isinstance(g, dict) and g.get("id") in server_ids:
                vals = _clean(g, SERVER_METRICS)
                if vals:
                    points.append((str(g["id"]), "server", vals))
    if not points:
        return 0
    keys = [(obj, res, int(now // res * res)) for obj, _t, _v in points for res in (MINUTE, HOUR)]
    have = {(r.obj_id, r.resolution, r.ts): r for r in session.scalars(
        select(MetricSample).where(tuple_(MetricSample.obj_id, MetricSample.resolution, MetricSample.ts).in_(keys)))}
    for obj, obj_type, vals in points:
        for res in (MINUTE, HOUR):
            key = (obj, res, int(now // res * res))
            row = have.get(key)
            if row is None:
                row = have[key] = MetricSample(obj_id=obj, resolution=res, ts=key[2], obj_type=obj_type, n=0)
                session.add(row)
            n = row.n + 1
            for k, v in vals.items():
                old = getattr(row, k)
                # a running average; a value missing from earlier samples starts from this one
                setattr(row, k, v if old is None else old + (v - old) / n)
            row.n = n
    return len(keys)


def purge(session: Session, now: float | None = None) -> int:
    """Drop buckets past their retention (the periodic job ``metrics-purge``)."""
    now = int(time.time() if now is None else now)
    n = 0
    for res, keep in KEEP.items():
        r = session.execute(delete(MetricSample).where(MetricSample.resolution == res, MetricSample.ts < now - keep))
        n += int(r.rowcount or 0)  # type: ignore[attr-defined]
    session.commit()
    return n


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(raw: str | int | None, what: str, lo: int = 1, hi: int = KEEP[HOUR], default: str = "1h") -> int:
    """``30m``, ``1h``, ``7d`` (or seconds) -> seconds within [lo, hi]; anything else a 400 naming ``what``."""
    if isinstance(raw, bool):
        raise InputParameterError(f"{what}: a duration such as 30m, 1h or 7d, not {raw!r}")
    text = (default if raw is None or raw == "" else str(raw)).strip().lower()
    try:
        secs = int(text[:-1]) * _UNITS[text[-1]] if text[-1] in _UNITS else int(text)
    except (ValueError, IndexError):
        raise InputParameterError(f"{what}: a duration such as 30m, 1h or 7d, not {raw!r}") from None
    if not lo <= secs <= hi:
        top = f"{hi // 86400}d" if hi % 86400 == 0 else f"{hi}s"
        raise InputParameterError(f"{what}: must be between {lo}s and {top}, not {raw!r}")
    return secs


def parse_since(raw: str | None) -> int:
    """``30m``, ``1h``, ``7d`` (or seconds) -> seconds, at most 30 days."""
    return duration(raw, "since")


def metric_names(obj_type: str, wanted: list[str] | None) -> tuple[str, ...]:
    names = SERVER_METRICS if obj_type == "server" else HOST_METRICS
    if not wanted:
        return names
    bad = [w for w in wanted if w not in names]
    if bad:
        raise InputParameterError(f"metric: {bad[0]!r} is not a {obj_type} metric (known: {', '.join(names)})")
    return tuple(wanted)


def query(session: Session, obj_id: str, obj_type: str, since_s: int, wanted: list[str] | None = None,
          now: float | None = None) -> dict[str, Any]:
    """Series in the unified-monitor shape: one per metric, ``columns`` naming each point's fields
    (``[time_ms, value]``); buckets without a value for a metric are left out of its points."""
    names = metric_names(obj_type, wanted)
    now = time.time() if now is None else now
    res = MINUTE if since_s <= KEEP[MINUTE] else HOUR
    start = int((now - since_s) // res * res)
    cols = [getattr(MetricSample, k) for k in names]
    rows = session.execute(select(MetricSample.ts, *cols)
                           .where(MetricSample.obj_id == obj_id, MetricSample.resolution == res,
                                  MetricSample.ts >= start)
                           .order_by(MetricSample.ts)).all()
    series = []
    for i, name in enumerate(names):
        pts = [[r[0] * 1000, round(r[i + 1], 3)] for r in rows if r[i + 1] is not None]
        series.append({"name": name, "columns": ["time", name], "tags": {"id": obj_id, "res_type": obj_type},
                       "points": pts})
    return {"id": obj_id, "res_type": obj_type, "resolution": res, "since": since_s, "series": series}


__all__ = ["ALL_METRICS", "ingest", "parse_since", "purge", "query"]
