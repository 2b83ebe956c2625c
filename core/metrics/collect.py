"""What the database knows, read at scrape time: tasks by type and status, servers and hosts by
status, every project's usage against its quota (the resources it uses), and this replica's
connection pool.

Read at scrape time (not counted as things happen) so every replica reports the same totals and a
restart loses nothing. Each family is one GROUP BY or one narrow scan; see bench/metrics.py.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select


class DatabaseCollector:
    def __init__(self, db: Any) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        from core.keystone.models import Project
        from core.region import quotas
        from core.region.models import Host, Quota, Server
        from core.tasks.models import Task

        with self.db.session() as s:
            tasks = GaugeMetricFamily("cloudpods_tasks", "Tasks in the database, by task type and status",
                                      labels=["task", "status"])
            for name, status, n in s.execute(select(Task.task_name, Task.status, func.count())
                                             .group_by(Task.task_name, Task.status)):
                tasks.add_metric([name, status], n)
            yield tasks
            servers = GaugeMetricFamily("cloudpods_servers", "Servers (not in the recycle bin), by status",
                                        labels=["status"])
            for status, n in s.execute(select(Server.status, func.count()).where(Server.pending_deleted.is_(False))
                                       .group_by(Server.status)):
                servers.add_metric([status], n)
            yield servers
            hosts = GaugeMetricFamily("cloudpods_hosts", "Hosts, by host status", labels=["host_status"])
            for status, n in s.execute(select(Host.host_status, func.count()).group_by(Host.host_status)):
                hosts.add_metric([status or ""], n)
            yield hosts
            names = dict(s.execute(select(Project.id, Project.name)).tuples().all())
            limit = GaugeMetricFamily("cloudpods_project_quota", "A project's quota limit (-1: unlimited)",
                                      labels=["project_id", "project", "resource"])
            used = GaugeMetricFamily("cloudpods_project_usage", "A project's usage of a quota resource",
                                     labels=["project_id", "project", "resource"])
            cols = [Quota.tenant_id] + [getattr(Quota, k) for k in quotas.KEYS] + \
                [getattr(Quota, f"used_{k}") for k in quotas.KEYS]
            n_keys = len(quotas.KEYS)
            for row in s.execute(select(*cols)):
                tenant = row[0]
                for i, k in enumerate(quotas.KEYS):
                    if not row[1 + n_keys + i]:
                        continue  # a resource the project does not use: 14 series per project cost ~1 MB at 1000
                    lbl = [tenant, names.get(tenant, ""), k]
                    limit.add_metric(lbl, row[1 + i])
                    used.add_metric(lbl, row[1 + n_keys + i])
            yield limit
            yield used
        yield from _pool(self.db)


def _pool(db: Any) -> Iterator[Metric]:
    pool = db.engine.pool
    checked = getattr(pool, "checkedout", None)
    size = getattr(pool, "size", None)
    if callable(checked):
        g = GaugeMetricFamily("cloudpods_db_pool_checked_out", "Database connections in use by this replica")
        g.add_metric([], checked())
        yield g
    if callable(size):
        g = GaugeMetricFamily("cloudpods_db_pool_size", "Database connection pool size of this replica")
        g.add_metric([], size())
        yield g
