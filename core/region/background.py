"""Background services of the region, hooked into ``core.api.app.BACKGROUND``.

``start(app)`` starts the task workers (claiming with a lease; requeues this controller's
orphaned tasks first), the executor of hosts whose driver runs in the controller
(core/hostapi/executor.py) and the periodic jobs (apscheduler, each under a DB lease so one replica
runs it), registers the scheduler's snapshot provider, and returns the stop callable.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


def start(app: Any) -> Callable[[], None]:
    from core.hostapi import executor, migrations
    from core.region.scheduling import provider_snapshot
    from core.scheduler.provider import set_snapshot_provider
    from core.tasks.periodic import PeriodicRunner
    from core.tasks.worker import Worker, default_owner

    settings = app.state.settings
    db = app.state.db
    owner = settings.task_owner or default_owner(settings.port)
    # how long a replica that died mid-stage keeps its tasks before another one takes them over
    lease_s = settings.task_lease_s
    migrations.configure(settings.data_dir)  # where migrating disks are staged (tasks discard them)
    worker = Worker(db, owner, threads=settings.task_workers, lease_s=lease_s)
    worker.start()
    # the target of hosts whose driver runs in the controller: same owner, same lease as tasks
    rt = executor.configure(settings.data_dir, db, settings)
    runner = executor.Executor(rt, owner, threads=settings.executor_threads, lease_s=lease_s,
                               heartbeat_s=settings.executor_heartbeat_s)
    runner.start()
    if rt.drivers.pxe is not None:  # the boot network: bare-metal deploys, and machines PXE-booting unknown
        from core.region.host_bmc import enrol_pxe_mac

        rt.drivers.pxe.listen(lambda mac: enrol_pxe_mac(db, mac))
    # cloud account syncs: their own threads (a sync may take minutes), claimed under a DB lease
    from core.region.cloud.sync import Syncer

    syncer = Syncer(db, owner, threads=settings.cloudsync_threads, poll_s=settings.cloudsync_poll_s,
                    list_threads=settings.cloudsync_list_threads)
    syncer.start()
    periodic = PeriodicRunner(db, owner, settings)
    periodic.start()
    set_snapshot_provider(provider_snapshot(db))

    def stop() -> None:
        set_snapshot_provider(None)
        periodic.stop()
        syncer.stop()
        runner.stop()
        worker.stop()
        executor.unconfigure()
        migrations.unconfigure()

    return stop
