"""Periodic jobs, listed in one place; each runs under a DB lease so one replica runs it.

Each job finds candidates, then handles them in its own transaction, in batches. ``PeriodicRunner``
fires each enabled job every interval from one scheduling thread (core.loops); a run gets a thread of
its own that ends with it (a slow job delays no other one; a run still going when its job is due again
means that firing is skipped, and missed firings are one). ``run_once`` runs every job
immediately (tests, ``ocadm`` tools). Switches, intervals
and the values a job needs are fields of ``core.config.Settings`` (``CLOUDPODS_<FIELD>`` in the
environment), read when the runner starts and passed to the job as keyword arguments.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from core.config import Settings
from core.db.lease import try_acquire
from core.loader import load
from core.loops import Loops

log = logging.getLogger("cloudpods.periodic")


def _always(_s: Settings) -> bool:
    return True


def _no_params(_s: Settings) -> dict[str, Any]:
    return {}


def _every(seconds: float) -> Callable[[Settings], float]:
    return lambda _s: seconds


@dataclass(frozen=True)
class Job:
    name: str
    fn: str  # "module:function" taking (session, **params(settings)), returning how many items it handled
    interval_s: Callable[[Settings], float]
    enabled: Callable[[Settings], bool] = _always
    params: Callable[[Settings], dict[str, Any]] = field(default=_no_params)


def _glance_janitor_interval(s: Settings) -> float:
    from core.glance.config import GlanceConfig  # glance's own [glance] table of config.toml

    return GlanceConfig.load(s.config_path).janitor_interval_s


JOBS: tuple[Job, ...] = (
    Job("hosts-offline", "core.region.periodic:mark_offline_hosts", lambda s: s.job_hosts_offline_interval_s,
        lambda s: s.job_hosts_offline, lambda s: {"offline_after_s": s.host_offline_s}),
    Job("work-items-redeliver", "core.region.periodic:redeliver_work_items", _every(60.0),
        params=lambda s: {"timeout_s": s.work_item_timeout_s}),
    Job("cloudaccounts-sync", "core.region.cloud.sync:due", lambda s: s.job_cloudsync_interval_s,
        lambda s: s.job_cloudsync),
    Job("recycle-bin-purge", "core.region.periodic:purge_recycle_bin", _every(300.0), lambda s: s.job_purge,
        lambda s: {"keep_s": s.pending_delete_s}),
    Job("console-sessions-purge", "core.console.tokens:purge", _every(3600.0)),
    Job("metrics-purge", "core.metrics.history:purge", _every(600.0)),  # usage history past its retention
    # abandoned uploads and orphan files of the image store
    Job("glance-janitor", "core.glance.janitor:sweep_job", _glance_janitor_interval,
        params=lambda s: {"data_dir": s.data_dir, "config_path": s.config_path}),
    # alert rules: states, history, notifications (core/metrics/evaluator.py)
    Job("alerts-evaluate", "core.metrics.evaluator:run", lambda s: s.job_alerts_interval_s, lambda s: s.job_alerts),
)


def run_job(db: Any, job: Job, holder: str, settings: Settings) -> int | None:
    """Run ``job`` if this holder gets its lease; None when another replica holds it."""
    with db.session() as s:
        if not try_acquire(s, f"periodic:{job.name}", holder, job.interval_s(settings) * 3):
            return None
    with db.session() as s:
        return int(load(job.fn)(s, **job.params(settings)) or 0)


def run_once(db: Any, holder: str, settings: Settings) -> dict[str, int | None]:
    return {j.name: run_job(db, j, holder, settings) for j in JOBS if j.enabled(settings)}


class PeriodicRunner:
    """The jobs on core.loops: one waiting thread for all of them, a thread per run (apscheduler did
    this before at ~1.8 MB of RSS and 30 modules; a thread per job would hold ~140 kB of RSS each while
    it waits: issue 22)."""

    def __init__(self, db: Any, holder: str, settings: Settings) -> None:
        self.db = db
        self.holder = holder
        self.settings = settings
        self._loops: Loops | None = None
        self._runs: dict[str, threading.Thread] = {}  # the last run of each job

    def start(self) -> None:
        loops = Loops(log)
        jobs = [(job, job.interval_s(self.settings)) for job in JOBS if job.enabled(self.settings)]
        loops.loop("periodic", partial(self._schedule, jobs, loops.stopping))
        self._loops = loops

    def _schedule(self, jobs: list[tuple[Job, float]], stopping: threading.Event) -> None:
        now = time.monotonic()
        due = {job.name: now + interval for job, interval in jobs}  # the first run after one interval
        while due:
            job, interval = min(jobs, key=lambda ji: due[ji[0].name])
            if stopping.wait(max(0.0, due[job.name] - time.monotonic())):
                return
            last = self._runs.get(job.name)
            if last is None or not last.is_alive():
                run = threading.Thread(target=self._run, args=(job,), name=f"periodic-{job.name}", daemon=True)
                try:
                    run.start()
                    self._runs[job.name] = run
                except RuntimeError:  # no thread to be had now (a resource limit): the next firing tries again
                    log.exception("periodic job %s could not start", job.name)
            nxt, now = due[job.name] + interval, time.monotonic()
            due[job.name] = nxt if nxt > now else now + interval  # fixed rate; missed firings are one
        stopping.wait()

    def _run(self, job: Job) -> None:
        try:
            n = run_job(self.db, job, self.holder, self.settings)
            if n:
                log.info("periodic %s handled %d item(s)", job.name, n)
        except Exception:
            log.exception("periodic job %s failed", job.name)

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        """The scheduling thread and the runs still going."""
        loops = self._loops.threads if self._loops is not None else ()
        return (*loops, *(t for t in list(self._runs.values()) if t.is_alive()))

    def stop(self) -> None:
        """Stop at once: a run still going finishes in its (daemon) thread, under its lease."""
        if self._loops is not None:
            self._loops.stop(timeout=0)
            self._loops = None
