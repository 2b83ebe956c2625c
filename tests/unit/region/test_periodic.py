"""Periodic jobs: hosts go offline after 180 s without a ping; the lease lets one runner at a time."""
from __future__ import annotations

from datetime import timedelta

from core.config import Settings
from core.db.base import utcnow
from core.db.engine import Database
from core.region.models import Host, Server, Zone
from core.region.periodic import mark_offline_hosts
from core.tasks.periodic import JOBS, run_job


def test_offline_after_180s(db: Database) -> None:
    with db.session() as s:
        z = Zone(name="z", cloudregion_id="default")
        s.add(z)
        s.flush()
        s.add(Host(name="fresh", zone_id=z.id, host_status="online", last_ping_at=utcnow() - timedelta(seconds=60)))
        s.add(Host(name="stale", zone_id=z.id, host_status="online", last_ping_at=utcnow() - timedelta(seconds=181)))
    with db.session() as s:
        assert mark_offline_hosts(s) == 1
    with db.session() as s:
        got = {h.name: (h.host_status, h.generation) for h in s.query(Host)}
    assert got == {"fresh": ("online", 0), "stale": ("offline", 1)}


def test_guests_of_an_offline_host_are_unknown_with_the_reason(db: Database) -> None:
    with db.session() as s:
        z = Zone(name="z", cloudregion_id="default")
        s.add(z)
        s.flush()
        h = Host(name="gone", zone_id=z.id, host_status="online", last_ping_at=utcnow() - timedelta(seconds=500))
        s.add(h)
        s.flush()
        s.add(Server(name="vm", host_id=h.id, status="running", power_status="on"))
    with db.session() as s:
        assert mark_offline_hosts(s) == 1
    with db.session() as s:
        vm = s.query(Server).one()
        assert (vm.status, vm.power_status) == ("unknown", "on")  # the agent restores "on" when it is back
        assert vm.status_reason.startswith("host gone went offline"), vm.status_reason


def test_one_holder_per_job(db: Database) -> None:
    job = next(j for j in JOBS if j.name == "hosts-offline")
    settings = Settings()
    assert run_job(db, job, "replica-a", settings) == 0
    assert run_job(db, job, "replica-b", settings) is None  # a holds the lease
    assert run_job(db, job, "replica-a", settings) == 0  # renewing is fine


def test_switches_and_intervals_come_from_settings(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """CLOUDPODS_<FIELD> in the environment reaches the jobs through Settings (read once, passed in)."""
    monkeypatch.setenv("CLOUDPODS_JOB_CLOUDSYNC", "0")
    monkeypatch.setenv("CLOUDPODS_JOB_HOSTS_OFFLINE_INTERVAL_S", "1.5")
    monkeypatch.setenv("CLOUDPODS_HOST_OFFLINE_S", "4")
    settings = Settings.load(tmp_path)
    jobs = {j.name: j for j in JOBS}
    assert not jobs["cloudaccounts-sync"].enabled(settings) and jobs["recycle-bin-purge"].enabled(settings)
    assert jobs["hosts-offline"].interval_s(settings) == 1.5
    assert jobs["hosts-offline"].params(settings) == {"offline_after_s": 4.0}
    assert jobs["glance-janitor"].interval_s(settings) == 600.0  # glance's [glance] janitor_interval_s


def test_glance_janitor_runs_as_a_periodic_job(db: Database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    job = next(j for j in JOBS if j.name == "glance-janitor")
    settings = Settings(data_dir=tmp_path)
    assert run_job(db, job, "replica-a", settings) == 0
    assert run_job(db, job, "replica-b", settings) is None  # one lease mechanism for every job


def test_the_runner_fires_jobs_from_one_waiting_thread_until_stopped(db: Database, tmp_path,
                                                                     monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """PeriodicRunner on core.loops: a job runs again every interval in a thread that ends with the run;
    while nothing runs, one thread waits for all the jobs; none is left after stop (no apscheduler:
    issue 22, its ~1.8 MB at idle)."""
    import sys
    import time

    from core.tasks.periodic import PeriodicRunner

    monkeypatch.setenv("CLOUDPODS_JOB_CLOUDSYNC", "0")
    monkeypatch.setenv("CLOUDPODS_JOB_HOSTS_OFFLINE_INTERVAL_S", "0.05")
    settings = Settings.load(tmp_path)
    with db.session() as s:
        z = Zone(name="z", cloudregion_id="default")
        s.add(z)
        s.flush()
        zone_id = z.id

    def add_stale(name: str) -> None:
        with db.session() as s:
            s.add(Host(name=name, zone_id=zone_id, host_status="online",
                       last_ping_at=utcnow() - timedelta(seconds=500)))

    def status(name: str) -> str:
        with db.session() as s:
            return str(s.query(Host).filter_by(name=name).one().host_status)

    def wait_for(cond) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + 60
        while not cond():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.02)

    runner = PeriodicRunner(db, "runner-test", settings)
    runner.start()
    seen: set[str] = set()
    try:
        add_stale("stale-1")
        wait_for(lambda: status("stale-1") == "offline")
        add_stale("stale-2")  # a later run finds it too
        wait_for(lambda: status("stale-2") == "offline")
        seen = {t.name for t in runner.threads}
        # the one long-lived thread; a run of hosts-offline (every 0.05 s) may be going beside it
        assert "periodic" in seen and seen <= {"periodic", "periodic-hosts-offline"}, seen
    finally:
        all_threads = runner.threads
        runner.stop()
    wait_for(lambda: not any(t.is_alive() for t in all_threads))
    assert "apscheduler" not in sys.modules


def test_a_failing_job_is_logged_and_fired_again(db: Database, tmp_path, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    import time

    from core.tasks import periodic

    calls: list[str] = []

    def boom(db: object, job: periodic.Job, holder: str, settings: object) -> int:
        calls.append(job.name)
        raise RuntimeError("boom")

    monkeypatch.setattr(periodic, "run_job", boom)
    monkeypatch.setenv("CLOUDPODS_JOB_HOSTS_OFFLINE_INTERVAL_S", "0.05")
    runner = periodic.PeriodicRunner(db, "runner-fail", Settings.load(tmp_path))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while calls.count("hosts-offline") < 3:
            assert time.monotonic() < deadline, calls
            time.sleep(0.02)
    finally:
        runner.stop()
    assert "periodic job hosts-offline failed" in caplog.text
