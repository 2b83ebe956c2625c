"""Usage history storage: samples folded into minute and hour buckets, bounded by the purge;
queries pick the resolution from the window; only known, finite numbers are kept."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db.engine import Database
from core.errors import InputParameterError
from core.metrics.history import ingest, parse_since, purge, query
from core.metrics.models import MetricSample

T0 = 1_800_000_000  # a whole hour


@pytest.fixture
def db(tmp_path: Path) -> Database:
    import core.db.models  # noqa: F401
    from core.db.base import Base

    d = Database(f"sqlite:///{tmp_path / 'h.db'}")
    Base.metadata.create_all(d.engine, tables=[MetricSample.__table__])  # type: ignore[list-item]
    return d


def test_samples_average_into_minute_and_hour_buckets(db: Database) -> None:
    with db.session() as s:
        for i, cpu in enumerate((10.0, 20.0, 30.0)):  # three pings within one minute
            ingest(s, "h1", {"guests": [{"id": "g1", "cpu_percent": cpu, "mem_mb": 512}]}, {"g1"}, now=T0 + i * 10)
            s.commit()
        ingest(s, "h1", {"guests": [{"id": "g1", "cpu_percent": 90.0}]}, {"g1"}, now=T0 + 65)
        # someone else's guest, junk values: ignored
        ingest(s, "h1", {"guests": [{"id": "g2", "cpu_percent": 5.0}, {"id": "g1", "cpu_percent": float("nan"),
                                                                        "bogus": 1}]}, {"g1"}, now=T0 + 70)
        s.commit()
        out = query(s, "g1", "server", 3600, now=T0 + 120)
        cpu = next(x for x in out["series"] if x["name"] == "cpu_percent")
        assert out["resolution"] == 60 and cpu["points"] == [[T0 * 1000, 20.0], [(T0 + 60) * 1000, 90.0]]
        hour = query(s, "g1", "server", 7 * 86400, now=T0 + 120)
        assert hour["resolution"] == 3600
        assert next(x for x in hour["series"] if x["name"] == "cpu_percent")["points"] == [[T0 * 1000, 37.5]]
        assert s.scalar(select(func.count()).select_from(MetricSample).where(MetricSample.obj_id == "g2")) == 0


def test_rows_per_guest_stay_bounded(db: Database) -> None:
    with db.session() as s:
        for m in range(0, 3 * 24 * 60, 7):  # three days of samples every 7 minutes
            now = T0 + m * 60
            ingest(s, "h1", {"host": {"cpu_percent": 1.0}, "guests": [{"id": "g1", "cpu_percent": 1.0}]}, {"g1"},
                   now=now)
            if m % 600 == 0:
                purge(s, now=now)
        s.commit()
        purge(s, now=T0 + 3 * 86400)
        per = dict(s.execute(select(MetricSample.resolution, func.count()).where(MetricSample.obj_id == "g1")
                             .group_by(MetricSample.resolution)).tuples().all())
        assert per[60] <= 24 * 60 // 7 + 2 and per[3600] == 3 * 24, per
        assert s.scalar(select(func.count()).select_from(MetricSample).where(MetricSample.obj_id == "h1")) > 0


@pytest.mark.parametrize("raw, secs", [("30m", 1800), ("1h", 3600), ("7d", 604800), ("90", 90)])
def test_since(raw: str, secs: int) -> None:
    assert parse_since(raw) == secs


@pytest.mark.parametrize("raw", ["x", "31d", "0", "-1h", "1w"])
def test_bad_since(raw: str) -> None:
    with pytest.raises(InputParameterError):
        parse_since(raw)


def test_metrics_0001_upgrades_an_older_database(tmp_path: Path) -> None:
    """A database from before usage history gets the table (and its purge index); the downgrade
    drops it and leaves the rest alone."""
    from sqlalchemy import create_engine, inspect, text

    from core.db.migrate import downgrade, upgrade

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "region_0005")
    with engine.begin() as c:
        c.execute(text("INSERT INTO db_leases (name, holder, expires_at) VALUES ('x', 'me', '2030-01-01 00:00:00')"))
    assert upgrade(engine).state == "current"
    assert "ix_metric_samples_resolution_ts" in {i["name"] for i in inspect(engine).get_indexes("metric_samples")}
    d = Database(str(engine.url))
    with d.session() as s:
        ingest(s, "h", {"guests": [{"id": "g", "cpu_percent": 5.0}]}, {"g"}, now=T0)
        s.commit()
        assert query(s, "g", "server", 3600, now=T0 + 30)["series"][0]["points"] == [[T0 * 1000, 5.0]]
    d.dispose()
    downgrade(engine, "metrics@root_0001")
    assert "metric_samples" not in inspect(engine).get_table_names()
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM db_leases")).scalar() == 1
