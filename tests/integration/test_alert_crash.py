"""Issue 18: the controller killed mid-evaluation -> the alert fires exactly once after restart.

A rule on a running guest's cpu_percent (a real agent on libvirt's test driver reports it) crosses its
threshold. The controller is SIGKILLed twice, each time restarted on the same database:

1. mid-evaluation: at the ``alerts-before-commit`` failpoint (core/failpoints.py; the change, its
   record and its queued delivery are made, not committed): nothing of it is in the database, nothing
   was sent;
2. mid-delivery: the restarted evaluator commits the change and posts the webhook to a real local
   receiver, which holds that first post unanswered; the controller is killed while it is in flight.

What is guaranteed, and asserted after the second restart:

- exactly one ``alerting`` record (the state change, its record and its queued delivery are one
  transaction: the restarted evaluator sees the state already alerting and records nothing new);
- the alert's notification is delivered at least once and carries one delivery id
  (``X-Cloudpods-Delivery``, also in the signed body): the held post was never answered, so the
  restarted controller sends it again with the same id, and a receiver that dedupes on the id sees
  exactly one alert. Here: two posts, one delivery id, the record ends ``sent``.
"""
from __future__ import annotations

import json
import secrets
import signal
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from core.failpoints import ENV
from tests.e2e.test_agent_support import AgentProc, libvirt_or_skip, server, upload_tiny_image, wait_for
from tests.support.controller import Controller
from tests.support.notify_peers import webhook_receiver


def _rows(ctl: Controller, rule_id: str) -> tuple[int, int]:
    """(alert records, object states) of a rule, read from the database while no controller runs."""
    eng = create_engine(ctl.db_url)
    try:
        with eng.connect() as c:
            recs = c.execute(text("SELECT COUNT(*) FROM alertrecords WHERE alert_id = :r"), {"r": rule_id}).scalar()
            sts = c.execute(text("SELECT COUNT(*) FROM commonalert_states WHERE alert_id = :r"),
                            {"r": rule_id}).scalar()
        return int(recs or 0), int(sts or 0)
    finally:
        eng.dispose()


def test_controller_killed_mid_evaluation_and_mid_delivery_alert_fires_once(tmp_path: Path) -> None:
    libvirt_or_skip()
    tag = secrets.token_hex(3)
    hook_secret = f"crash-secret-{tag}-0123456789"
    ctl = Controller.init(tmp_path / "ctl")
    ctl.env["CLOUDPODS_JOB_ALERTS_INTERVAL_S"] = "1"  # the evaluator every second (default 30 s)
    ctl.env[ENV] = "alerts-before-commit=pause:300"  # the first controller stops there
    agent: AgentProc | None = None

    def ok(*args: str) -> Any:
        r = ctl.climc(*args, "-o", "json")
        assert r.returncode == 0, (args, r.stderr)
        return json.loads(r.stdout)

    def alerting(rule_id: str) -> list[dict[str, Any]]:
        recs = ok("alert-history", "--alert-id", rule_id, "--state", "alerting")["data"]
        return list(recs)

    with webhook_receiver(hook_secret, hold_first=True) as hook:
        try:
            ctl.serve()
            agent = AgentProc.join(ctl, tmp_path / "n0", f"crash-node-{tag}")
            agent.start()
            upload_tiny_image(ctl)
            made = ok("server-create", f"crash-vm-{tag}", "--disk", "tiny", "--net", "default", "--auto-start")
            sid = made["data"][0]["id"] if "data" in made else made["id"]
            wait_for(lambda: server(ctl, sid)["status"] == "running", 60, "the guest running")
            ok("notify-config-create", f"crash-hook-{tag}", "--type", "webhook", "--url", hook.url,
               "--secret", hook_secret)
            rule = ok("alert-create", f"crash-hot-{tag}", "--metric", "cpu_percent", "--comparator", ">=",
                      "--threshold", "0", "--period", "1m", "--scope", "server", "--server", sid,
                      "--notify-config", f"crash-hook-{tag}")

            # 1. killed mid-evaluation: the change is made but not committed
            wait_for(lambda: b"failpoint alerts-before-commit reached" in ctl.log_path.read_bytes(), 120,
                     "the evaluator at its failpoint")
            ctl.stop(signal.SIGKILL)
            assert _rows(ctl, rule["id"]) == (0, 0) and hook.deliveries == []
            del ctl.env[ENV]
            ctl.serve()

            # 2. the first delivery reached the receiver, which does not answer: kill the sender now
            assert hook.held.wait(120), "the alert's webhook never arrived"
            ctl.stop(signal.SIGKILL)
            hook.release.set()
            assert len(hook.deliveries) == 1 and hook.events[0]["state"] == "alerting"

            ctl.serve()
            recs = wait_for(lambda: [r for r in alerting(rule["id"]) if r["notify_status"] == "sent"], 90,
                            "the record's delivery sent after the restart")
            # a few more evaluator passes: still nothing new
            passes = ok("alert-show", rule["id"])["last_eval_at"]
            wait_for(lambda: ok("alert-show", rule["id"])["last_eval_at"] != passes, 60, "another pass")
            recs = alerting(rule["id"])
            assert len(recs) == 1 and recs[0]["res_id"] == sid and recs[0]["notify_status"] == "sent", recs
            shown = ok("monitor-alertrecord-show", recs[0]["id"])
            assert [n["status"] for n in shown["notifications"]] == ["sent"], shown
            # at least once on the wire, once by its delivery id
            alerts = [(e["record_id"], e["delivery_id"]) for e in hook.events if e["state"] == "alerting"]
            assert len(alerts) == 2 and len(set(alerts)) == 1, hook.events
            assert alerts[0][0] == recs[0]["id"] and set(hook.deliveries) == {alerts[0][1]}, hook.deliveries
            assert hook.rejected == 0
        finally:
            if agent is not None:
                agent.stop()
            ctl.stop()
