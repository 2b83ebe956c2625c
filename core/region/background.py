"""Background services of the region, hooked into ``core.api.app.BACKGROUND``.

``start(app)`` starts the task workers (claiming with a lease; requeues this controller's
orphaned tasks first), the executor of hosts whose driver runs in the controller
(core/hostapi/executor.py) and the periodic jobs (apscheduler, each under a DB lease so one replica
runs it), registers the scheduler's snapshot provider, and returns the stop callable.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


def start(app: Any) -> Callable[[], None]:
    from core.hostapi import executor, migrations
    from core.region.scheduling import provider_snapshot
    from core.scheduler.provider import set_snapshot_provider
    from core.tasks.periodic import PeriodicRunner
    from core.tasks.worker import LEASE_S, Worker, default_owner

    settings = app.state.settings
    db = app.state.db
    owner = os.environ.get("CLOUDPODS_TASK_OWNER") or default_owner(settings.port)
    threads = int(os.environ.get("CLOUDPODS_TASK_WORKERS", "2"))
    # how long a replica that died mid-stage keeps its tasks before another one takes them over
    lease_s = float(os.environ.get("CLOUDPODS_TASK_LEASE_S", LEASE_S))
    migrations.configure(settings.data_dir)  # where migrating disks are staged (tasks discard them)
    worker = Worker(db, owner, threads=threads, lease_s=lease_s)
    worker.start()
    # the target of hosts whose driver runs in the controller: same owner, same lease as tasks
    rt = executor.configure(settings.data_dir, db, settings)
    runner = executor.Executor(rt, owner, threads=int(os.environ.get("CLOUDPODS_EXECUTOR_THREADS", "2")),
                               lease_s=lease_s, heartbeat_s=float(os.environ.get("CLOUDPODS_EXECUTOR_HEARTBEAT_S",
                                                                                 executor.HEARTBEAT_S)))
    runner.start()
    if rt.drivers.pxe is not None:  # the boot network: bare-metal deploys, and machines PXE-booting unknown
        from core.region.host_bmc import enrol_pxe_mac

        rt.drivers.pxe.listen(lambda mac: enrol_pxe_mac(db, mac))
    # cloud account syncs: their own threads (a sync may take minutes), claimed under a DB lease
    from core.region.cloud.sync import Syncer

    syncer = Syncer(db, owner, threads=int(os.environ.get("CLOUDPODS_CLOUDSYNC_THREADS", "1")))
    syncer.start()
    periodic = PeriodicRunner(db, owner)
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
