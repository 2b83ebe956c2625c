"""The executor's wake-up (core/hostapi/executor.py): a new work item wakes its idle threads only when
its host is one the executor runs, not for every agent host's deploy."""
from __future__ import annotations

from sqlalchemy import select

from core.db.engine import Database
from core.hostapi import executor
from core.region.defaults import DEFAULTS
from core.region.enroll import enroll_host
from core.region.hosted import TARGET_EXECUTOR
from core.region.models import Host, Zone
from core.tasks.engine import submit
from core.tasks.models import WorkItem


def test_only_an_executor_hosts_item_wakes_the_executor(db: Database) -> None:
    with db.session() as s:
        zone = s.scalar(select(Zone).where(Zone.name == DEFAULTS.zone))
        assert zone is not None
        agent_host = enroll_host(s, zone_id=zone.id, host_name="wake-agent-host").host_id
        exec_host = enroll_host(s, zone_id=zone.id, host_name="wake-exec-host").host_id
        h = s.get(Host, exec_host)
        assert h is not None
        h.target = TARGET_EXECUTOR
        task_id = submit(s, "noop", "server", "srv-exec-wake", "srv-exec-wake").id
        s.commit()

    def queue(host_id: str, stage: str) -> int:
        seen = executor.WAKEUP.generation()
        with db.session() as s:
            s.add(WorkItem(task_id=task_id, stage=stage, host_id=host_id, kind="guest-start"))
            s.commit()
        return executor.WAKEUP.generation() - seen

    assert queue(agent_host, "on_a") == 0  # an agent pulls it: the executor has nothing to claim
    assert queue(exec_host, "on_b") == 1
