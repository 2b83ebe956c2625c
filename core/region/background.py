"""Background services of the region, hooked into ``core.api.app.BACKGROUND``.

``start(app)`` starts the task workers (claiming with a lease; requeues this controller's
orphaned tasks first), the executor of hosts whose driver runs in the controller
(core/hostapi/executor.py; their drivers: core/region/hosted.py), cloud syncs and the periodic jobs
(apscheduler, each under a DB lease so one replica runs it), registers the scheduler's snapshot
provider, and returns the stop callable.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("cloudpods.region")


def start(app: Any) -> Callable[[], None]:
    """What requests read is set here, before the app serves (the executor's runtime, where migrating
    disks are staged, the scheduler's snapshot provider, the PXE listener); the threads that work on
    their own (task workers, executor, cloud syncs, periodic jobs) are started by a thread of their
    own once the server listens (``app.state.listening``; at once without one), so the controller
    answers before they start: ~0.06 s of the start's CPU (the first ORM query configuring every
    mapper, apscheduler's plugin scan). Work queued meanwhile waits in the database, as it does for a
    busy worker."""
    from core.hostapi import migrations
    from core.region import hosted
    from core.region.scheduling import provider_snapshot
    from core.scheduler.provider import set_snapshot_provider

    settings = app.state.settings
    db = app.state.db
    migrations.configure(settings.data_dir)  # where migrating disks are staged (tasks discard them)
    # the target of hosts whose driver runs in the controller: same owner, same lease as tasks
    rt = hosted.configure(settings.data_dir, db, settings)
    if rt.drivers.pxe is not None:  # the boot network: bare-metal deploys, and machines PXE-booting unknown
        from core.region.host_bmc import enrol_pxe_mac

        rt.drivers.pxe.listen(lambda mac: enrol_pxe_mac(db, mac))
    set_snapshot_provider(provider_snapshot(db))
    stops: list[Callable[[], None]] = []  # of what the starter started, in start order
    stopping = threading.Event()

    listening = getattr(app.state, "listening", None)  # set by the server once it listens (ocadm serve)

    def run() -> None:
        while listening is not None and not listening.wait(0.05):
            if stopping.is_set():
                return
        try:
            for step in _threads(settings, db, rt):
                if stopping.is_set():
                    return
                stops.append(step())
        except Exception as exc:
            log.exception("starting the region's background threads failed")
            # a controller without task workers would accept work it never does: the server stops
            failed = getattr(app.state, "background_failed", None)
            if callable(failed):
                failed(exc)

    starter = threading.Thread(target=run, name="background-start", daemon=True)
    starter.start()

    def stop() -> None:
        stopping.set()
        starter.join()
        set_snapshot_provider(None)
        for stop_one in reversed(stops):
            stop_one()
        hosted.unconfigure()
        migrations.unconfigure()

    return stop


def _threads(settings: Any, db: Any, rt: Any) -> list[Callable[[], Callable[[], None]]]:
    """Each starts one kind of background thread and returns its stop: task workers (claiming with a
    lease; requeuing this controller's orphaned tasks first), the executor, cloud syncs, periodic jobs."""
    from core.tasks.worker import default_owner

    owner = settings.task_owner or default_owner(settings.port)
    # how long a replica that died mid-stage keeps its tasks before another one takes them over
    lease_s = settings.task_lease_s

    def worker() -> Callable[[], None]:
        from core.tasks.worker import Worker

        w = Worker(db, owner, threads=settings.task_workers, lease_s=lease_s)
        w.start()
        return w.stop

    def runner() -> Callable[[], None]:
        from core.hostapi.executor import Executor

        r = Executor(rt, owner, threads=settings.executor_threads, lease_s=lease_s,
                     heartbeat_s=settings.executor_heartbeat_s)
        r.start()
        return r.stop

    def syncer() -> Callable[[], None]:
        # cloud account syncs: their own threads (a sync may take minutes), claimed under a DB lease
        from core.region.cloud.sync import Syncer

        sy = Syncer(db, owner, threads=settings.cloudsync_threads, poll_s=settings.cloudsync_poll_s,
                    list_threads=settings.cloudsync_list_threads)
        sy.start()
        return sy.stop

    def periodic() -> Callable[[], None]:
        from core.tasks.periodic import PeriodicRunner

        p = PeriodicRunner(db, owner, settings)
        p.start()
        return p.stop

    return [worker, runner, syncer, periodic]
