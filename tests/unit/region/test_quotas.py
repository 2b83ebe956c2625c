"""Quotas: reserve in the transaction, name what is exceeded, release once, hold under concurrency."""
from __future__ import annotations

import threading

import pytest

from core.db.engine import Database
from core.errors import InputParameterError, OutOfQuotaError
from core.region import quotas
from core.region.common import begin_write
from core.region.models import Quota


def test_reserve_release_and_names(db: Database) -> None:
    with db.session() as s:
        quotas.set_limits(s, "p1", "default", {"cpu": 4, "memory": 4096})
    with db.session() as s:
        quotas.reserve(s, "p1", cpu=3, memory=1024, servers=1)
    with db.session() as s, pytest.raises(OutOfQuotaError, match=r"cpu \(requested 2 vCPU, used 3, limit 4\)"):
        quotas.reserve(s, "p1", cpu=2, memory=10)
    with db.session() as s, pytest.raises(OutOfQuotaError) as ei:
        quotas.reserve(s, "p1", cpu=5, memory=5000)
    assert "cpu" in ei.value.details and "memory" in ei.value.details
    with db.session() as s:
        quotas.release(s, "p1", {"cpu": 10, "memory": 1024})
    with db.session() as s:
        row = s.get(Quota, "p1")
        assert row is not None and row.used_cpu == 0 and row.used_memory == 0 and row.used_servers == 1


def test_unlimited(db: Database) -> None:
    with db.session() as s:
        quotas.set_limits(s, "p2", "default", {"servers": -1})
    with db.session() as s:
        quotas.reserve(s, "p2", servers=10_000)


def test_a_limit_is_a_count_or_minus_one(db: Database) -> None:
    for bad in (-5, 1.5, True, "3"):
        with db.session() as s, pytest.raises(InputParameterError, match=r"eip: must be an integer >= 0 \(-1 for"):
            quotas.set_limits(s, "p4", "default", {"eip": bad})
        with db.session() as s, pytest.raises(InputParameterError, match=r"eip: must be an integer >= 0 \(-1 for"):
            quotas.set_domain_limits(s, "d4", {"eip": bad})
    with db.session() as s:
        assert quotas.set_limits(s, "p4", "default", {"eip": 0, "cpu": -1}).eip == 0


def test_concurrent_reservations_never_exceed(db: Database) -> None:
    with db.session() as s:
        quotas.set_limits(s, "p3", "default", {"servers": 25})
    ok: list[int] = []
    denied: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            try:
                with db.session() as s:
                    begin_write(s)
                    quotas.reserve(s, "p3", servers=1)
                with lock:
                    ok.append(1)
            except OutOfQuotaError:
                with lock:
                    denied.append(1)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ok) == 25 and len(denied) == 35
    with db.session() as s:
        row = s.get(Quota, "p3")
        assert row is not None and row.used_servers == 25


def test_a_domain_cap_bounds_its_projects_together(db: Database) -> None:
    with db.session() as s:
        quotas.set_domain_limits(s, "d9", {"cpu": 5})
        s.commit()
    with db.session() as s:
        quotas.reserve(s, "d9-p1", "d9", cpu=3)
        s.commit()
    with db.session() as s, pytest.raises(OutOfQuotaError, match=r"domain d9's quota: cpu \(requested 3 vCPU, "
                                                                 r"used 3 in the domain, domain limit 5\)"):
        quotas.reserve(s, "d9-p2", "d9", cpu=3)
    with db.session() as s:
        quotas.reserve(s, "d9-p2", "d9", cpu=2, memory=10)  # memory has no domain cap
        quotas.reserve(s, "other-p", "d8", cpu=50)  # another domain is not bound by it
        s.commit()
    with db.session() as s:
        quotas.set_domain_limits(s, "d9", {}, reset=True)
        s.commit()
    with db.session() as s:
        quotas.reserve(s, "d9-p2", "d9", cpu=3)
