"""Background services of the region, hooked into ``core.api.app.BACKGROUND``.

``start(app)`` starts the task workers (claiming with a lease; requeues this controller's
orphaned tasks first), cloud syncs and the periodic jobs (core/tasks/periodic.py, each under a DB lease so
one replica runs it), configures the runtime of hosts whose driver runs in the controller
(core/region/hosted.py; their executor is started after this by core/hostapi/background.py),
registers the scheduler's snapshot provider, and returns the stop callable.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.api.background import Step

log = logging.getLogger("cloudpods.region")


def start(app: Any) -> Callable[[], None]:
    """What requests read is set here, before the app serves (the hosted drivers' runtime, where
    migrating disks are staged, the scheduler's snapshot provider, the PXE listener); the threads that
    work on their own (task workers, cloud syncs, periodic jobs) start once the server listens
    (core/api/background.py), so the controller answers before they start: ~0.06 s of the start's CPU
    (the first ORM query configuring every mapper)."""
    from core.api.background import when_listening
    from core.region import hosted, migration_staging
    from core.region.scheduling import provider_snapshot
    from core.scheduler.provider import set_snapshot_provider

    settings = app.state.settings
    db = app.state.db
    migration_staging.configure(settings.data_dir)  # where migrating disks are staged (tasks discard them)
    # the runtime of hosts whose driver runs in the controller (their executor: core/hostapi/background.py)
    rt = hosted.configure(settings.data_dir, db, settings)
    if rt.drivers.pxe is not None:  # the boot network: bare-metal deploys, and machines PXE-booting unknown
        from core.region.host_bmc import enrol_pxe_mac

        rt.drivers.pxe.listen(lambda mac: enrol_pxe_mac(db, mac))
    set_snapshot_provider(provider_snapshot(db))
    stop_threads = when_listening(app, lambda: _threads(settings, db), thread="background-start",
                                  what="the region's background threads", log=log)

    def stop() -> None:
        stop_threads()
        set_snapshot_provider(None)
        hosted.unconfigure()
        migration_staging.unconfigure()

    return stop


def task_owner(settings: Any) -> str:
    """This controller's name as the owner of the tasks and work items it claims."""
    from core.tasks.worker import default_owner

    return str(settings.task_owner or default_owner(settings.port))


def _threads(settings: Any, db: Any) -> list[Step]:
    """Each starts one kind of background thread and returns its stop: task workers (claiming with a
    lease; requeuing this controller's orphaned tasks first), cloud syncs, periodic jobs."""
    owner = task_owner(settings)
    # how long a replica that died mid-stage keeps its tasks before another one takes them over
    lease_s = settings.task_lease_s

    def worker() -> Callable[[], None]:
        from core.tasks.worker import Worker

        w = Worker(db, owner, threads=settings.task_workers, lease_s=lease_s)
        w.start()
        return w.stop

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

    return [worker, syncer, periodic]
