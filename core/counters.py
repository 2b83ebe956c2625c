"""This process's Prometheus counters (one registry, not prometheus_client's global one: a test or a
bench that builds several apps in one process must not trip over duplicate registrations).

Counters are per process, which is how Prometheus expects replicas to be scraped: each replica is
its own target and queries sum over ``instance``. What every replica would report alike (tasks,
quotas) comes from the database at scrape time instead (core/metrics/collect.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.process_collector import ProcessCollector

if TYPE_CHECKING:
    from core.scheduler.result import PlacementResult

disable_created_metrics()  # no *_created series: a third less to render and parse per scrape
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # cpu seconds, RSS, open fds of this replica

# ``route`` is the route's template (/api/s/compute_v2/servers/{id}), never the raw path: one series
# per route, however many ids are asked for. Unmatched paths share one label.
HTTP_REQUESTS = Counter("cloudpods_http_requests", "HTTP requests answered, by route template and status",
                        ["method", "route", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram("cloudpods_http_request_duration_seconds", "Time to answer an HTTP request",
                         ["method", "route"], registry=REGISTRY,
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
SCHED_DECISIONS = Counter("cloudpods_scheduler_decisions",
                          "Placement requests: placed (all fitted), partial, failed (none fitted)",
                          ["result", "dry_run"], registry=REGISTRY)
SCHED_PLACED = Counter("cloudpods_scheduler_placed_instances", "Instances placed on a host", registry=REGISTRY)
SCHED_REJECTIONS = Counter("cloudpods_scheduler_rejections",
                           "Hosts a filter removed from a placement request (each host counted once, by the "
                           "first filter that rejected it)", ["filter"], registry=REGISTRY)
TASK_STAGE_SECONDS = Histogram("cloudpods_task_stage_duration_seconds", "Time one task stage ran in a worker",
                               ["task", "stage"], registry=REGISTRY,
                               buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0))
TASK_STAGE_FAILURES = Counter("cloudpods_task_stage_failures", "Task stages that raised (the task failed)",
                              ["task", "stage"], registry=REGISTRY)


def record_placement(result: PlacementResult) -> None:
    """One placement decision: its outcome and, per filter, how many hosts that filter removed."""
    placed = len(result.placements)
    outcome = "placed" if result.ok else ("partial" if placed else "failed")
    SCHED_DECISIONS.labels(outcome, "true" if result.dry_run else "false").inc()
    if not result.dry_run and placed:
        SCHED_PLACED.inc(placed)
    for r in (*result.rejected, *result.exhausted):
        SCHED_REJECTIONS.labels(r.filter_name).inc(r.count)
