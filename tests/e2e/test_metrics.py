"""Metrics end to end: the controller's and an agent's /metrics scraped and parsed with
prometheus_client's own text parser; who may scrape; a running guest on libvirt's test driver
showing up with cpu time that moves (one not running has none); usage history through climc."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_agent_support import (
    AgentProc,
    B,
    libvirt_or_skip,
    outsider_token,
    server,
    upload_tiny_image,
    wait_for,
)
from tests.e2e.test_identity_support import admin, mk_project
from tests.support.controller import Controller, free_port


def parse(text: str) -> dict[str, list[Any]]:
    """family name -> its samples, through prometheus_client's parser (a malformed line raises)."""
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


def value(fams: dict[str, list[Any]], sample: str, **labels: str) -> float | None:
    for fam in fams.values():
        for s in fam:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


@pytest.fixture(scope="module")
def open_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Controller, AgentProc, int]]:
    """A controller with ``metrics_open`` and one agent whose /metrics listens on loopback."""
    libvirt_or_skip()
    root: Path = tmp_path_factory.mktemp("metrics")
    ctl = Controller.init(root / "ctl")
    ctl.env["CLOUDPODS_METRICS_OPEN"] = "1"
    ctl.env["CLOUDPODS_JOB_ALERTS_INTERVAL_S"] = "1"  # the alert evaluator every second (default 30 s)
    port = free_port()
    agent: AgentProc | None = None
    try:
        ctl.serve()
        agent = AgentProc.join(ctl, root / "n0", "mnode-0", settings={"metrics_listen": f"127.0.0.1:{port}"})
        agent.start()
        upload_tiny_image(ctl)
        yield ctl, agent, port
    finally:
        if agent is not None:
            agent.stop()
        ctl.stop()


def test_controller_metrics_need_a_system_admin(controller: Controller) -> None:
    assert httpx.get(controller.url + "/metrics", timeout=30).status_code == 401
    member = httpx.get(controller.url + "/metrics", headers={"X-Auth-Token": outsider_token(controller)}, timeout=30)
    assert member.status_code == 403, member.text
    controller.api.get(f"{B}/servers/no-such-server")  # a 404 on a templated route
    project = mk_project(admin(controller))
    q = controller.api.post(f"{B}/quotas", json={"quota": {"cpu": 77}, "project": project["id"]})
    assert q.status_code == 200, q.text
    r = controller.api.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    fams = parse(r.text)
    # per route template, never per id
    assert value(fams, "cloudpods_http_requests_total", method="GET", route="/api/s/compute_v2/servers/{ident}",
                 status="404") is not None, [s for s in fams["cloudpods_http_requests"] if "servers" in str(s)][:5]
    assert not any("no-such-server" in str(s.labels) for s in fams["cloudpods_http_requests"])
    assert value(fams, "cloudpods_http_request_duration_seconds_count", method="GET",
                 route="/api/s/compute_v2/servers/{ident}") is not None
    # every project with a quota row: its limits and usage
    # a project that uses nothing yet has no series (1000 idle projects would be ~1 MB per scrape)
    assert value(fams, "cloudpods_project_quota", project_id=project["id"]) is None
    assert "cloudpods_db_pool_checked_out" in fams or "cloudpods_db_pool_size" in fams or \
        controller.dialect == "sqlite"
    assert "process_cpu_seconds" in fams


@pytest.fixture(scope="module")
def guests(open_cloud: tuple[Controller, AgentProc, int]) -> list[str]:
    """Two servers on the agent: the first running, the second never started."""
    ctl, _agent, _port = open_cloud
    ids = []
    for name, extra in (("mvm-run", ("--auto-start",)), ("mvm-off", ())):
        r = ctl.climc("server-create", name, "--disk", "tiny", "--net", "default", *extra, "-o", "json")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        ids.append(out["data"][0]["id"] if "data" in out else out["id"])
    wait_for(lambda: server(ctl, ids[0])["status"] == "running", 60, "running")
    wait_for(lambda: (s := server(ctl, ids[1]))["status"] == "ready" and not s["active_task_id"], 60, "created")
    return ids


def test_open_scrape_scheduler_tasks_and_agent_guest_stats(open_cloud: tuple[Controller, AgentProc, int],
                                                          guests: list[str]) -> None:
    ctl, agent, port = open_cloud
    ids, stopped = guests, guests[1]
    # a forecast that no host can satisfy: rejections by filter
    fc = ctl.api.post("/api/s/scheduler/scheduler/forecast",
                      json={"scheduler": {"vcpu_count": 1, "vmem_size": 64 * 1024 * 1024,
                                          "disks": [{"size": 1024}], "networks": [{"network": "default"}]}})
    assert fc.status_code == 200 and fc.json()["can_create"] is False, fc.text
    filters = {c["filter_name"] for c in fc.json()["filtered_candidates"]}

    fams = parse(httpx.get(ctl.url + "/metrics", timeout=30).text)  # open: no token
    assert value(fams, "cloudpods_scheduler_decisions_total", result="placed", dry_run="false") >= 1  # type: ignore[operator]
    assert value(fams, "cloudpods_scheduler_placed_instances_total") >= 2  # type: ignore[operator]
    assert value(fams, "cloudpods_scheduler_decisions_total", result="failed", dry_run="true") >= 1  # type: ignore[operator]
    for name in filters:
        assert value(fams, "cloudpods_scheduler_rejections_total", filter=name) >= 1  # type: ignore[operator]
    assert value(fams, "cloudpods_tasks", status="done") is not None
    assert value(fams, "cloudpods_servers", status="running") == 1
    assert value(fams, "cloudpods_hosts", host_status="online") == 1
    assert value(fams, "cloudpods_task_stage_duration_seconds_count") is not None
    # the project running the servers: its usage against its quota, with the project's name
    quota = ctl.api.get(f"{B}/quotas").json()["quota"]
    assert value(fams, "cloudpods_project_usage", project_id=quota["tenant_id"], resource="servers") == \
        quota["usage.servers"] == 2
    assert value(fams, "cloudpods_project_quota", project_id=quota["tenant_id"], project="system",
                 resource="servers") == quota["servers"]

    def guest() -> dict[str, Any]:
        f = parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text)
        return {i: (value(f, "cloudpods_guest_running", server_id=i),
                    value(f, "cloudpods_guest_cpu_seconds_total", server_id=i)) for i in ids} | {"_f": f}

    first = guest()
    f = first["_f"]
    assert value(f, "cloudpods_host_memory_total_bytes", host="mnode-0") > 0  # type: ignore[operator]
    assert value(f, "cloudpods_host_disk_free_bytes", host="mnode-0") > 0  # type: ignore[operator]
    assert value(f, "cloudpods_host_cpu_seconds_total", host="mnode-0") > 0  # type: ignore[operator]
    assert first[ids[0]][0] == 1.0 and first[stopped][0] == 0.0
    # the running guest's cpu time moves; the other has none
    wait_for(lambda: guest()[ids[0]][1] > first[ids[0]][1], 60, "cpu time moves")
    assert first[stopped][1] is None


def test_usage_history_through_climc(open_cloud: tuple[Controller, AgentProc, int], guests: list[str]) -> None:
    ctl, _agent, _port = open_cloud
    running, stopped = guests

    def history(ident: str, *extra: str) -> dict[str, Any]:
        r = ctl.climc("server-metrics", ident, "--since", "1h", *extra, "-o", "json")
        assert r.returncode == 0, r.stderr
        return {s["name"]: s["points"] for s in json.loads(r.stdout)["series"]}

    # agents ping every second here: a few samples give the running guest a cpu figure (the test
    # driver's cpu time follows the clock) and its memory; the one never started has neither
    got = wait_for(lambda: (h := history(running))["cpu_percent"] and h, 60, "cpu samples of the running guest")
    assert all(0 < p[1] <= 100 for p in got["cpu_percent"]) and got["mem_mb"][-1][1] > 0, got
    assert all(isinstance(p[0], int) and p[0] % 60000 == 0 for p in got["cpu_percent"])  # minute buckets, ms
    idle = wait_for(lambda: (h := history(stopped))["mem_mb"] and h, 60, "samples of the stopped guest")
    assert all(p[1] == 0 for p in idle["mem_mb"]) and not idle["cpu_percent"], idle  # it never ran
    only = history(running, "--metric", "cpu_percent")
    assert list(only) == ["cpu_percent"]
    table = ctl.climc("server-metrics", running, "--since", "30m")
    assert table.returncode == 0 and "cpu_percent" in table.stdout and "1 min buckets" in table.stdout, table.stderr
    assert any(c in table.stdout for c in "▁▂▃▄▅▆▇█"), table.stdout
    host = ctl.climc("host-metrics", "mnode-0", "-o", "json")
    assert host.returncode == 0, host.stderr
    hs = {s["name"]: s["points"] for s in json.loads(host.stdout)["series"]}
    assert hs["mem_mb"] and hs["disk_used_percent"] and "load_1m" in hs, hs
    # 24h and 7d read other resolutions; bad input is a readable 400
    assert json.loads(ctl.climc("server-metrics", running, "--since", "7d", "-o", "json").stdout)["resolution"] == 3600
    bad = ctl.climc("server-metrics", running, "--since", "yesterday")
    assert bad.returncode != 0 and "since" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    bad = ctl.climc("server-metrics", running, "--metric", "load_1m")
    assert bad.returncode != 0 and "not a server metric" in bad.stderr, bad.stderr
    # another tenant cannot read this server's history: not found, like the server itself
    other = httpx.get(f"{ctl.url}{B}/servers/{running}/metrics", headers={"X-Auth-Token": outsider_token(ctl)},
                      timeout=30)
    assert other.status_code == 404, other.text


def test_alert_fires_by_mail_and_webhook_through_climc(open_cloud: tuple[Controller, AgentProc, int],
                                                      guests: list[str], tmp_path: Path) -> None:
    """A rule on the running guest's cpu fires: a real SMTP server (STARTTLS, AUTH) gets the mail, a
    receiver that checks the HMAC signature gets the webhook; the history shows it; secrets never come
    back; bad input is a readable 400; another tenant sees none of it."""
    import secrets as _secrets

    from tests.support.notify_peers import smtp_server, webhook_receiver

    ctl, _agent, _port = open_cloud
    running = guests[0]
    tag = _secrets.token_hex(3)
    hook_secret = f"hook-secret-{tag}-0123456789"
    pw_file = tmp_path / "smtp-pw"

    def ok(*args: str) -> dict[str, Any]:
        r = ctl.climc(*args, "-o", "json")
        assert r.returncode == 0, (args, r.stderr)
        return json.loads(r.stdout)  # type: ignore[no-any-return]

    with smtp_server(tmp_path) as smtp, webhook_receiver(hook_secret) as hook:
        pw_file.write_text(smtp.password)
        (tmp_path / "ca.pem").write_text(smtp.ca_pem)
        mail = ok("notify-config-create", f"mail-{tag}", "--type", "email", "--hostname", "127.0.0.1",
                  "--hostport", str(smtp.port), "--username", smtp.user, "--password", f"@{pw_file}",
                  "--sender", "cloudpods@example.org", "--to", "ops@example.org", "--ca-cert", str(tmp_path / "ca.pem"))
        hook_cfg = ok("notify-config-create", f"hook-{tag}", "--type", "webhook", "--url", hook.url,
                      "--secret", hook_secret)
        shown = ctl.climc("notify-config-show", f"mail-{tag}", "-o", "json").stdout + json.dumps(hook_cfg)
        assert smtp.password not in shown and hook_secret not in shown and "secret\"" not in shown
        assert mail["content"]["password_set"] is True and hook_cfg["content"]["secret_set"] is True
        rule = ok("monitor-commonalert-create", f"hot-{tag}", "--metric", "cpu_percent", "--comparator", ">=",
                  "--threshold", "0", "--period", "1m", "--scope", "server", "--server", running, "--level", "fatal",
                  "--notify-config", f"mail-{tag}", "--notify-config", f"hook-{tag}")
        assert rule["scope"] == "server" and rule["res_id"] == running and rule["comparator"] == ">="
        # bad input: one readable line, nothing created
        for args, word in ((("--metric", "bogus", "--threshold", "1"), "metric"),
                           (("--metric", "cpu_percent", "--threshold", "lots"), "threshold"),
                           (("--metric", "cpu_percent", "--threshold", "1", "--period", "1y"), "window")):
            bad = ctl.climc("monitor-commonalert-create", f"bad-{tag}", "--comparator", ">", *args)
            assert bad.returncode != 0 and word in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        # the evaluator runs every second here; agents ping every second with samples
        wait_for(lambda: any(e["state"] == "alerting" for e in hook.events) and smtp.messages, 90,
                 "the alert's webhook and mail")
        ev = next(e for e in hook.events if e["state"] == "alerting")
        assert ev["alert_id"] == rule["id"] and ev["res_id"] == running and ev["level"] == "fatal", ev
        assert hook.rejected == 0 and smtp.tls_sessions == [True]
        assert f"ALERTING: hot-{tag} (fatal)" in smtp.messages[0]["Subject"]
        recs = wait_for(lambda: [r for r in ok("monitor-alertrecord-list", "--alert-id", rule["id"])["data"]
                                 if r["state"] == "alerting" and r["notify_status"] == "sent"], 60, "record sent")
        assert recs[0]["res_name"] == "mvm-run" and recs[0]["prev_state"] == "ok", recs
        rec = ok("monitor-alertrecord-show", recs[0]["id"])
        assert sorted(n["status"] for n in rec["notifications"]) == ["sent", "sent"], rec
        assert ok("monitor-commonalert-show", f"hot-{tag}")["alert_state"] == "alerting"
        assert len([e for e in hook.events if e["state"] == "alerting"]) == 1  # fired once, not every second

        # another tenant: every one of them is a 404, and its lists are empty of them
        other = {"X-Auth-Token": outsider_token(ctl)}
        for path in (f"commonalerts/{rule['id']}", f"alertrecords/{recs[0]['id']}", f"notifyconfigs/{mail['id']}"):
            assert httpx.get(f"{ctl.url}{B}/{path}", headers=other, timeout=30).status_code == 404, path
        lists = httpx.get(f"{ctl.url}{B}/commonalerts", headers=other, timeout=30).json()["commonalerts"]
        assert rule["id"] not in {x["id"] for x in lists}
        r = httpx.post(f"{ctl.url}{B}/commonalerts/{rule['id']}/disable", headers=other, timeout=30)
        assert r.status_code == 404, r.text

        assert ctl.climc("monitor-commonalert-disable", f"hot-{tag}").returncode == 0
        assert ok("monitor-commonalert-show", f"hot-{tag}")["enabled"] is False
        used = ctl.climc("notify-config-delete", f"mail-{tag}")
        assert used.returncode != 0 and f"hot-{tag}" in used.stderr, used.stderr  # a rule still uses it
        assert ctl.climc("monitor-commonalert-delete", f"hot-{tag}").returncode == 0
        assert ctl.climc("notify-config-delete", f"mail-{tag}", f"hook-{tag}").returncode == 0
        assert ok("monitor-alertrecord-show", recs[0]["id"])["alert_id"] == rule["id"]  # history stays
