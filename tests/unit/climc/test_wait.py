"""--wait follows the task an async command started (climc/wait.py), against a fake controller."""
from __future__ import annotations

from typing import Any

import httpx

from tests.support.mockcloud import MockCloud, body_of


def _tasks(cloud: MockCloud, states: list[dict[str, Any]], task_id: str = "t1",
           children: list[list[dict[str, Any]]] | None = None) -> None:
    """``GET /tasks/<id>`` answers each state in turn (the last one forever)."""
    seq = list(states)

    def task(_req: httpx.Request) -> dict[str, Any]:
        cur = seq.pop(0) if len(seq) > 1 else seq[0]
        return {"task": {"id": task_id, "task_name": "ServerPowerTask", **cur}}
    cloud.route("GET", f"/tasks/{task_id}", task)
    kids = list(children or [[]])

    def child_list(_req: httpx.Request) -> dict[str, Any]:
        cur = kids.pop(0) if len(kids) > 1 else kids[0]
        return {"tasks": [{"parent_task_id": task_id, **c} for c in cur], "total": len(cur)}
    cloud.route("GET", "/tasks", child_list)


def test_start_wait_prints_each_stage_once_and_shows_the_end_state(monkeypatch: Any) -> None:
    monkeypatch.setattr("climc.wait.POLL_S", 0.0)
    cloud = MockCloud()
    cloud.route("POST", "/servers/vm1/start", {"server": {"id": "s1", "name": "vm1", "status": "starting",
                                                         "active_task_id": "t1"}})
    cloud.route("GET", "/servers/vm1", {"server": {"id": "s1", "name": "vm1", "status": "running"}})
    done = "on_start_complete"
    _tasks(cloud, [{"status": "running", "stage": "on_init"}, {"status": "waiting", "stage": done},
                   {"status": "waiting", "stage": done}, {"status": "done", "stage": done}])
    r = cloud.climc("server-start", "vm1", "--wait", "-o", "json")
    assert r.exit_code == 0, r.output
    assert '"status": "running"' in r.stdout  # the server as it ended, not as it was queued
    lines = r.stderr.splitlines()
    assert lines == ["server vm1: init (running)", "server vm1: start complete (waiting)", "server vm1: done"]


def test_a_failed_task_exits_1_with_its_reason(monkeypatch: Any) -> None:
    monkeypatch.setattr("climc.wait.POLL_S", 0.0)
    cloud = MockCloud()
    cloud.route("POST", "/servers/vm1/stop", lambda req: {"server": {"id": "s1", "name": "vm1",
                                                                     "active_task_id": "t1", **body_of(req)}})
    _tasks(cloud, [{"status": "failed", "stage": "on_stop_complete_failed", "reason": "libvirt: domain is locked"}])
    r = cloud.climc("server-stop", "vm1", "--wait", "--timeout-secs", "5")
    assert r.exit_code == 1
    assert "server vm1: libvirt: domain is locked" in r.stderr
    assert ("GET", "/servers/vm1") not in cloud.calls  # nothing shown as if it had worked


def test_timeout_says_the_task_goes_on(monkeypatch: Any) -> None:
    monkeypatch.setattr("climc.wait.POLL_S", 0.05)
    cloud = MockCloud()
    cloud.route("DELETE", "/servers/vm1", {"server": {"id": "s1", "name": "vm1", "active_task_id": "t9"}})
    _tasks(cloud, [{"status": "waiting", "stage": "on_delete"}], task_id="t9")
    r = cloud.climc("server-delete", "-f", "vm1", "--wait", "--timeout", "0.2")
    assert r.exit_code == 1
    assert "still running after 0.2 s: server vm1" in r.stderr and "task-show t9" in r.stderr


def test_batch_create_counts_children_and_names_each_failure(monkeypatch: Any) -> None:
    monkeypatch.setattr("climc.wait.POLL_S", 0.0)
    cloud = MockCloud()
    rows = [{"id": f"s{i}", "name": f"web-{i}", "status": "schedule", "active_task_id": "b1"} for i in range(3)]
    cloud.route("POST", "/servers", {"servers": [{"body": r} for r in rows]})
    cloud.route("GET", "/servers", {"servers": [{**r, "status": "running"} for r in rows[:2]] +
                                    [{**rows[2], "status": "deploy_fail"}], "total": 3})
    kid = {"task_name": "ServerCreateTask", "obj_type": "server"}
    waiting = {"status": "waiting", "stage": "on_children_done"}
    _tasks(cloud, [waiting, waiting,
                   {"status": "failed", "stage": "on_children_done", "reason": "1 failed: web-2"}], task_id="b1",
           children=[[{**kid, "status": "running", "obj_name": f"web-{i}"} for i in range(3)],
                     [{**kid, "status": "done", "obj_name": "web-0"}, {**kid, "status": "running", "obj_name": "web-1"},
                      {**kid, "status": "running", "obj_name": "web-2"}],
                     [{**kid, "status": "done", "obj_name": "web-0"}, {**kid, "status": "done", "obj_name": "web-1"},
                      {**kid, "status": "failed", "obj_name": "web-2", "reason": "disk image missing"}]])
    r = cloud.climc("server-create", "web", "--count", "3", "--disk", "10g", "--wait")
    assert r.exit_code == 1
    err = r.stderr
    assert "3 servers web: children done: 0 of 3 finished" in err
    assert "3 servers web: children done: 1 of 3 finished" in err
    assert "server web-2: disk image missing" in err and "1 failed: web-2" in err


def test_without_wait_nothing_is_polled() -> None:
    cloud = MockCloud()
    cloud.route("POST", "/servers/vm1/start", {"server": {"id": "s1", "name": "vm1", "active_task_id": "t1"}})
    r = cloud.climc("server-start", "vm1")
    assert r.exit_code == 0
    assert [c for c in cloud.calls if c[1].startswith("/tasks")] == []


def _eip_tasks(cloud: MockCloud, existing: list[dict[str, Any]], queued: dict[str, Any]) -> None:
    """``GET /tasks?obj_id=e1``: ``existing`` until the verb's POST, then ``queued`` too."""
    posted: list[bool] = []

    def tasks(req: httpx.Request) -> dict[str, Any]:
        rows = [*existing, queued] if posted else list(existing)
        if req.url.params.get("task_name"):
            rows = [t for t in rows if t["task_name"] == req.url.params["task_name"]]
        if req.url.params.get("status"):
            rows = [t for t in rows if t["status"] == req.url.params["status"]]
        return {"tasks": [{"obj_id": "e1", **t} for t in rows]}
    cloud.route("GET", "/tasks", tasks)
    cloud.route("GET", f"/tasks/{queued['id']}", {"task": {"obj_id": "e1", **queued}})
    cloud.route("POST", "/eips/e1/associate", lambda _r: posted.append(True) or {
        "eip": {"id": "e1", "name": "ip1", "manager_id": "p1", "status": "associating"}})


def test_a_cloud_eip_associate_follows_the_task_it_queued_not_an_older_one(monkeypatch: Any) -> None:
    monkeypatch.setattr("climc.wait.POLL_S", 0.0)
    cloud = MockCloud()
    cloud.route("GET", "/eips/ip1", {"eip": {"id": "e1", "name": "ip1", "manager_id": "p1", "status": "ready"}})
    cloud.route("GET", "/eips/e1", {"eip": {"id": "e1", "name": "ip1", "manager_id": "p1", "status": "ready"}})
    old = {"id": "t0", "task_name": "EipAssociateTask", "status": "done", "stage": "on_init"}
    _eip_tasks(cloud, [old], {"id": "t1", "task_name": "EipAssociateTask", "status": "failed", "stage": "on_init",
                              "reason": "InvalidInstanceID: i-123 is not running"})
    r = cloud.climc("eip-associate", "ip1", "vm1", "--wait")
    assert r.exit_code == 1, r.output
    assert "eip ip1: InvalidInstanceID: i-123 is not running" in r.stderr
    assert ("GET", "/tasks/t1") in cloud.calls and ("GET", "/tasks/t0") not in cloud.calls


def test_a_cloud_eip_delete_that_comes_back_ready_fails_with_the_tasks_reason(monkeypatch: Any) -> None:
    monkeypatch.setattr("climc.wait.POLL_S", 0.0)
    cloud = MockCloud()
    states = ["deallocating", "deallocating", "ready"]
    cloud.route("DELETE", "/eips/ip1", {"eip": {"id": "e1", "name": "ip1", "manager_id": "p1",
                                                "status": "deallocating"}})
    cloud.route("GET", "/eips/ip1", lambda _r: {"eip": {"id": "e1", "name": "ip1", "manager_id": "p1",
                                                        "status": states.pop(0) if len(states) > 1 else states[0]}})
    cloud.route("GET", "/tasks", {"tasks": [{"id": "t9", "obj_id": "e1", "status": "failed",
                                             "reason": "AuthFailure: keys refused"}]})
    r = cloud.climc("eip-delete", "ip1", "--wait", "--timeout", "30")
    assert r.exit_code == 1, r.output
    assert "eip ip1 is ready again: the delete failed: AuthFailure: keys refused" in r.stderr, r.stderr


def test_delete_wait_shows_nothing_stale_once_the_server_is_gone(monkeypatch: Any) -> None:
    """server-delete -f --wait used to print the server as it was queued (status deleting); once the
    task ends with the server gone there is nothing to show but that it is gone (and purge exited 3)."""
    monkeypatch.setattr("climc.wait.POLL_S", 0.0)
    cloud = MockCloud()
    cloud.route("DELETE", "/servers/vm1", {"server": {"id": "s1", "name": "vm1", "status": "deleting",
                                                      "active_task_id": "t1"}})
    cloud.route("POST", "/servers/vm1/purge", {"server": {"id": "s1", "name": "vm1", "status": "deleting",
                                                          "active_task_id": "t1"}})
    _tasks(cloud, [{"status": "running", "stage": "on_init"}, {"status": "done", "stage": "on_init"}])
    for verb in (["server-delete", "vm1", "-f"], ["server-purge", "vm1"]):
        r = cloud.climc(*verb, "--wait", "-o", "json")
        assert r.exit_code == 0, r.output
        assert r.stdout == "" and "server vm1: deleted" in r.stderr, (verb, r.output)
