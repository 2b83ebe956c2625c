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
    wait_for(lambda: server(ctl, ids[0])["status"] == "running", 30, "running")
    wait_for(lambda: (s := server(ctl, ids[1]))["status"] == "ready" and not s["active_task_id"], 30, "created")
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
    wait_for(lambda: guest()[ids[0]][1] > first[ids[0]][1], 10, "cpu time moves")
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
    got = wait_for(lambda: (h := history(running))["cpu_percent"] and h, 30, "cpu samples of the running guest")
    assert all(0 < p[1] <= 100 for p in got["cpu_percent"]) and got["mem_mb"][-1][1] > 0, got
    assert all(isinstance(p[0], int) and p[0] % 60000 == 0 for p in got["cpu_percent"])  # minute buckets, ms
    idle = wait_for(lambda: (h := history(stopped))["mem_mb"] and h, 30, "samples of the stopped guest")
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
