"""Periodic jobs, listed in one place; each runs under a DB lease so one replica runs it.

Each job finds candidates, then handles them in its own transaction, in batches. apscheduler
fires them; ``run_once`` runs every job immediately (tests, ``ocadm`` tools).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.db.lease import try_acquire
from core.loader import load

log = logging.getLogger("cloudpods.periodic")
logging.getLogger("apscheduler").setLevel(logging.WARNING)  # it logs every run at INFO


@dataclass(frozen=True)
class Job:
    name: str
    fn: str  # "module:function" taking (session) and returning how many items it handled
    interval_s: float
    enabled: Callable[[], bool] = lambda: True


def _env_on(name: str) -> Callable[[], bool]:
    return lambda: os.environ.get(name, "1") not in ("0", "false", "no")


JOBS: tuple[Job, ...] = (
    Job("hosts-offline", "core.region.periodic:mark_offline_hosts",
        float(os.environ.get("CLOUDPODS_JOB_HOSTS_OFFLINE_INTERVAL_S", 30.0)), _env_on("CLOUDPODS_JOB_HOSTS_OFFLINE")),
    Job("work-items-redeliver", "core.region.periodic:redeliver_work_items", 60.0),
    Job("cloudaccounts-sync", "core.region.cloud.sync:due",
        float(os.environ.get("CLOUDPODS_JOB_CLOUDSYNC_INTERVAL_S", 60.0)), _env_on("CLOUDPODS_JOB_CLOUDSYNC")),
    Job("recycle-bin-purge", "core.region.periodic:purge_recycle_bin", 300.0, _env_on("CLOUDPODS_JOB_PURGE")),
    Job("console-sessions-purge", "core.console.tokens:purge", 3600.0),
    Job("metrics-purge", "core.metrics.history:purge", 600.0),  # usage history past its retention
)


def run_job(db: Any, job: Job, holder: str) -> int | None:
    """Run ``job`` if this holder gets its lease; None when another replica holds it."""
    with db.session() as s:
        if not try_acquire(s, f"periodic:{job.name}", holder, job.interval_s * 3):
            return None
    with db.session() as s:
        return int(load(job.fn)(s) or 0)


def run_once(db: Any, holder: str) -> dict[str, int | None]:
    return {j.name: run_job(db, j, holder) for j in JOBS if j.enabled()}


class PeriodicRunner:
    def __init__(self, db: Any, holder: str) -> None:
        self.db = db
        self.holder = holder
        self._sched: Any = None

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self._sched = BackgroundScheduler(daemon=True, job_defaults={"coalesce": True, "max_instances": 1})
        for job in JOBS:
            if job.enabled():
                self._sched.add_job(self._safe, "interval", seconds=job.interval_s, args=[job], id=job.name)
        self._sched.start()

    def _safe(self, job: Job) -> None:
        try:
            n = run_job(self.db, job, self.holder)
            if n:
                log.info("periodic %s handled %d item(s)", job.name, n)
        except Exception:
            log.exception("periodic job %s failed", job.name)

    def stop(self) -> None:
        if self._sched is not None:
            self._sched.shutdown(wait=False)
            self._sched = None
