"""Failpoints: named places where a crash test may stop the process to kill it exactly there.

Inert unless the environment variable ``CLOUDPODS_FAILPOINTS`` names them, as
``NAME=pause:SECONDS[,NAME=pause:SECONDS...]``: at a named point the process logs
``failpoint NAME reached`` (WARNING) and sleeps SECONDS, so a test that waits for that log line
can SIGKILL it there. Never set it in production. The points:

- ``alerts-before-commit`` (core/metrics/evaluator.py): a rule's state changes, records and queued
  notifications are made but not yet committed (tests/integration/test_alert_crash.py).
"""
from __future__ import annotations

import logging
import os
import time

log = logging.getLogger("cloudpods.failpoints")
ENV = "CLOUDPODS_FAILPOINTS"


def _pauses(spec: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, action = item.partition("=")
        kind, _, secs = action.partition(":")
        if kind == "pause":
            try:
                out[name.strip()] = float(secs)
            except ValueError:
                log.warning("%s: ignored %r (want NAME=pause:SECONDS)", ENV, item)
    return out


def hit(name: str) -> None:
    """Pause here if ``CLOUDPODS_FAILPOINTS`` names this point; otherwise nothing."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    secs = _pauses(spec).get(name)
    if secs is not None:
        log.warning("failpoint %s reached: pausing %.0f s", name, secs)
        time.sleep(secs)
