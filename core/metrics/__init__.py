"""Metrics: Prometheus exposition (``/metrics``), usage history and alert rules.

``registry`` holds this process's counters (requests, scheduler, task stages); ``collect`` reads
what the database knows at scrape time (tasks, servers, hosts, quotas, the DB pool); ``routes``
serves ``GET /metrics``. The agent's own exposition is core/agent/metrics.py.
"""
