"""Metrics: Prometheus exposition (``/metrics``), usage history and alert rules.

This process's counters (requests, scheduler, task stages) are core/counters.py, below this package:
the scheduler and the task engine count into them and import nothing of it. ``collect`` reads
what the database knows at scrape time (tasks, servers, hosts, quotas, the DB pool); ``routes``
serves ``GET /metrics``. The agent's own exposition is core/agent/metrics.py.
"""
