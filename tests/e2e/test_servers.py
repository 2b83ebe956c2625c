"""Servers end to end: climc + API against a real controller, a test-double agent over HTTP."""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.region_agent import TestbedAgent
from tests.support.controller import Controller
from tests.support.subnets import unique_octet
from tests.support.waiting import wait_for

B = "/api/s/compute_v2"


@pytest.fixture(scope="module")
def infra(controller: Controller, cirros_image: dict[str, object]) -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:6]
    names = {"zone": f"z-{tag}", "wire": f"w-{tag}", "net": f"n-{tag}", "host": f"h-{tag}", "tag": tag}
    yield host_infra(controller, names, tag, oui="00:16:3e", cpus=16, mem_mb=65536, storage_mb=1_000_000)


def host_infra(controller: Controller, names: dict[str, str], tag: str, *, oui: str, cpus: int, mem_mb: int,
               storage_mb: int) -> dict[str, str]:
    """The zone, wire, network (``10.N.7.10-40``, its ``prefix`` added) and registered host (its
    ``host_id`` added) that ``names`` names, through climc and the API; the host's MAC is ``oui`` + tag."""
    for args in (("zone-create", names["zone"]), ("wire-create", names["zone"], names["wire"], "1000")):
        r = controller.climc(*args)
        assert r.returncode == 0, r.stderr
    third = unique_octet()
    r = controller.climc("network-create", names["wire"], names["net"], f"10.{third}.7.10", f"10.{third}.7.40", "24",
                         "--gateway", f"10.{third}.7.1", "-o", "json")
    assert r.returncode == 0, r.stderr
    names["prefix"] = f"10.{third}.7."
    host = controller.api.post(f"{B}/zones/{names['zone']}/hosts", json={"host": {
        "name": names["host"], "access_mac": f"{oui}:{tag[:2]}:{tag[2:4]}:{tag[4:6]}", "cpu_count": cpus,
        "mem_size": mem_mb, "storages": [{"name": f"{names['host']}-local", "capacity": storage_mb}],
        "wires": [{"wire": names["wire"], "bridge": "br0"}]}})
    assert host.status_code == 200, host.text
    names["host_id"] = host.json()["host"]["id"]
    return names


def agent_for(controller: Controller, infra: dict[str, str], **kw: Any) -> TestbedAgent:
    """The real agent (test:/// hypervisor) acting for the infra's host, as an admin may."""
    return TestbedAgent(controller.env, infra["host_id"], host_name=infra["host"],
                        wires=({"wire": infra["wire"], "bridge": "br0"},), **kw)


def srv(controller: Controller, ident: str) -> dict[str, Any]:
    r = controller.api.get(f"{B}/servers/{ident}")
    assert r.status_code == 200, r.text
    return r.json()["server"]  # type: ignore[no-any-return]


def test_create_batch_ends_queued_for_the_host_without_an_agent(controller: Controller,
                                                                 infra: dict[str, str]) -> None:
    r = controller.climc("server-create", f"q-{infra['tag']}", "--ncpu", "1", "--mem-spec", "512m", "--disk",
                         "cirros:2g", "--net", infra["net"], "--count", "2", "--host", infra["host"], "-o", "json")
    assert r.returncode == 0, r.stderr
    ids = [s["id"] for s in json.loads(r.stdout)["data"]]
    for i in ids:
        s = wait_for(lambda i=i: (x := srv(controller, i))["status"] == "deploying" and x)
        assert s["host"] == infra["host"] and s["ips"].startswith(infra["prefix"]) and s["disk"] == 2048
    items = controller.api.get(f"{B}/agent/hosts/{infra['host_id']}/work-items").json()["work_items"]
    assert sorted(wi["payload"]["server"]["id"] for wi in items) == sorted(ids)
    assert all(wi["kind"] == "guest-deploy" and wi["payload"]["nics"][0]["bridge"] == "br0" for wi in items)
    # handed out once: a second poll does not get them while the agent's acknowledgement is due (a reply
    # that never reached the agent is handed out again after work_item_ack_s: tests/integration/test_scale.py)
    assert controller.api.get(f"{B}/agent/hosts/{infra['host_id']}/work-items").json()["work_items"] == []
    ack = f"{B}/agent/hosts/{infra['host_id']}/work-items/ack"
    bad = controller.api.post(ack, json={"ids": ["not-an-id"]})
    assert bad.status_code == 400 and "ids" in bad.json()["details"], bad.text
    r = controller.api.post(ack, json={"ids": [wi["id"] for wi in items] + [str(uuid.uuid4())]})
    assert r.status_code == 200 and r.json()["acked"] == sorted(wi["id"] for wi in items), r.text
    # a task holds each server until the agent reports: any second action is a 409
    busy = controller.api.post(f"{B}/servers/{ids[0]}/syncstatus", json={})
    assert busy.status_code == 409 and busy.json()["class"] == "ResourceBusyError", busy.text
    gone = controller.api.delete(f"{B}/servers/{ids[0]}", params={"override_pending_delete": "true"})
    assert gone.status_code == 409
    # the agent's report (here: a failure) finishes the task and frees the server
    r = controller.api.post(f"{B}/agent/tasks/{items[0]['task_id']}",
                            json={"work_item_id": items[0]["id"], "__status__": "error", "__reason__": "no kvm"})
    assert r.status_code == 200, r.text
    failed = items[0]["payload"]["server"]["id"]
    wait_for(lambda: srv(controller, failed)["status"] == "deploy_fail")
    # leave nothing behind for the next tests' agents: the other item fails too, both servers go
    r = controller.api.post(f"{B}/agent/tasks/{items[1]['task_id']}",
                            json={"work_item_id": items[1]["id"], "__status__": "error", "__reason__": "no kvm"})
    assert r.status_code == 200, r.text
    for i in ids:
        wait_for(lambda i=i: srv(controller, i)["status"] == "deploy_fail")
        assert controller.api.delete(f"{B}/servers/{i}", params={"override_pending_delete": "true"}).status_code == 200
    for i in ids:
        wait_for(lambda i=i: controller.api.get(f"{B}/servers/{i}").status_code == 404)


def test_lifecycle_with_a_test_double_agent(controller: Controller, infra: dict[str, str]) -> None:
    name = f"vm-{infra['tag']}"
    with agent_for(controller, infra):
        r = controller.climc("server-create", name, "--ncpu", "2", "--mem-spec", "1g", "--disk", "cirros:5g",
                             "--disk", "10g", "--net", f"{infra['net']}:{infra['prefix']}30", "--host",
                             infra["host"], "--auto-start", "-o", "json")
        assert r.returncode == 0, r.stderr
        s = wait_for(lambda: (x := srv(controller, name))["status"] == "running" and x)
        assert s["ips"] == f"{infra['prefix']}30" and len(s["disks_info"]) == 2
        assert all(d["status"] == "ready" for d in s["disks_info"])
        # wrong state → 400 naming the status; a second action while one runs → 409
        r = controller.api.post(f"{B}/servers/{name}/start", json={})
        assert r.status_code == 400 and r.json()["class"] == "InvalidStatusError" and "running" in r.json()["details"]
        r = controller.climc("server-stop", name)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: srv(controller, name)["status"] == "ready" and not srv(controller, name)["active_task_id"])
        # change-config while stopped, then start again
        r = controller.climc("server-change-config", name, "--ncpu", "4", "--vmem", "2g")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: (x := srv(controller, name))["vcpu_count"] == 4 and x["status"] == "ready")
        assert controller.climc("server-start", name).returncode == 0
        wait_for(lambda: srv(controller, name)["status"] == "running")
        assert controller.climc("server-syncstatus", name).returncode == 0
        wait_for(lambda: srv(controller, name)["status"] == "running" and not srv(controller, name)["active_task_id"])
        tasks = controller.climc("server-tasks", name, "-o", "json")
        assert tasks.returncode == 0
        names = {t["task_name"] for t in json.loads(tasks.stdout)["data"]}
        assert {"ServerCreateTask", "ServerPowerTask", "ServerChangeConfigTask", "ServerSyncstatusTask"} <= names
        # recycle bin: delete hides it, cancel-delete brings it back, -f deletes for good
        assert controller.climc("server-delete", name).returncode == 0
        lst = controller.api.get(f"{B}/servers", params={"search": name}).json()
        assert lst["servers"] == [] if "servers" in lst else True
        binned = controller.api.get(f"{B}/servers", params={"search": name, "pending_delete": "True"}).json()
        assert [x["name"] for x in binned["servers"]] == [name]
        # a server in the bin is stopped (Cloudpods): wait for that, then take it back, stopped
        wait_for(lambda: srv(controller, name)["status"] == "ready" and not srv(controller, name)["active_task_id"])
        assert controller.climc("server-cancel-delete", name).returncode == 0
        assert srv(controller, name)["pending_deleted"] is False and srv(controller, name)["status"] == "ready"
        spec_before = controller.api.get(f"{B}/hosts/{infra['host']}/spec").json()["spec"]
        assert controller.climc("server-delete", "-f", name).returncode == 0
        wait_for(lambda: controller.api.get(f"{B}/servers/{s['id']}").status_code == 404)
        spec_after = controller.api.get(f"{B}/hosts/{infra['host']}/spec").json()["spec"]
        assert spec_after["cpu_commit"] == spec_before["cpu_commit"] - 4
        addrs = controller.api.get(f"{B}/networks/{infra['net']}/addresses").json()["addresses"]
        assert f"{infra['prefix']}30" not in [a["ip_addr"] for a in addrs]


def test_an_item_delivered_again_is_not_run_again(controller: Controller, infra: dict[str, str]) -> None:
    """Delivery is at least once (a poll's reply can be lost, or the agent's ack): the agent runs an id once,
    and one it already finished it reports again instead of running it again."""
    name = f"again-{infra['tag']}"
    with agent_for(controller, infra) as agent:
        assert agent.agent is not None
        a = agent.agent
        r = controller.climc("server-create", name, "--ncpu", "1", "--mem-spec", "256m", "--disk", "cirros",
                             "--net", infra["net"], "--host", infra["host"], "--auto-start", "-o", "json")
        assert r.returncode == 0, r.stderr
        sid = json.loads(r.stdout)["id"]
        wait_for(lambda: (x := srv(controller, sid))["status"] == "running" and not x["active_task_id"])
        done = [wid for wid, res in a._finished.items() if res.get("guest_status") == "running"]
        assert done, dict(a._finished)
        handled = a.handled
        again = {"id": done[-1], "task_id": str(uuid.uuid4()), "kind": "guest-deploy", "payload": {}}
        assert a._accept([again]) == []  # finished: its result goes again (refused here: the task moved on)
        held = {"id": str(uuid.uuid4()), "task_id": str(uuid.uuid4()), "kind": "guest-start", "payload": {}}
        with a._held_lock:
            a._held.add(held["id"])
        assert a._accept([held]) == []  # running (or queued) here: not a second time
        time.sleep(0.5)
        assert a.handled == handled and srv(controller, sid)["status"] == "running"
        assert controller.climc("server-delete", "-f", sid).returncode == 0  # its agent deletes the guest
        wait_for(lambda: controller.api.get(f"{B}/servers/{sid}").status_code == 404)


def test_deploy_failure_releases_everything(controller: Controller, infra: dict[str, str]) -> None:
    name = f"bad-{infra['tag']}"
    before = controller.api.get(f"{B}/quotas").json()["quota"]
    with agent_for(controller, infra, fail_kinds=("guest-deploy",)):
        r = controller.api.post(f"{B}/servers", json={"server": {
            "name": name, "vcpu_count": 1, "vmem_size": 256, "disks": ["cirros:1g"], "nets": [infra["net"]],
            "prefer_host": infra["host"]}})
        assert r.status_code == 200, r.text
        s = wait_for(lambda: (x := srv(controller, name))["status"] == "deploy_fail" and x,
                     what=lambda: (srv(controller, name), controller.api.get(f"{B}/servers/{name}/tasks").json()))
    assert s["ips"] == "" and s["disks_info"] == []
    after = controller.api.get(f"{B}/quotas").json()["quota"]
    assert after["usage.cpu"] == before["usage.cpu"] and after["usage.ips"] == before["usage.ips"]
    tasks = controller.api.get(f"{B}/servers/{name}/tasks").json()["tasks"]
    assert any("injected failure of guest-deploy" in t["reason"] for t in tasks), tasks
    assert controller.climc("server-delete", "-f", name).returncode == 0
    wait_for(lambda: controller.api.get(f"{B}/servers/{s['id']}").status_code == 404)


def test_no_host_fits_is_sched_fail(controller: Controller, infra: dict[str, str]) -> None:
    r = controller.api.post(f"{B}/servers", json={"server": {
        "name": f"huge-{infra['tag']}", "vcpu_count": 500, "vmem_size": "3t", "prefer_host": infra["host"],
        "disks": ["1g"]}})
    if r.status_code == 400:  # the project quota refuses it first: also a clean answer
        assert r.json()["class"] == "OutOfQuotaError" and "cpu" in r.json()["details"]
        return
    sid = r.json()["server"]["id"]
    wait_for(lambda: srv(controller, sid)["status"] == "sched_fail")


def test_a_list_row_is_the_servers_show(controller: Controller, infra: dict[str, str]) -> None:
    """The list reads create_spec's shown keys (fail_reason here) in SQL, on every dialect: its row
    of a server is the server's show."""
    zone = f"empty-{infra['tag']}"  # no host: the create is sched_fail with the scheduler's reason
    assert controller.api.post(f"{B}/zones", json={"zone": {"name": zone}}).status_code == 200
    r = controller.api.post(f"{B}/servers", json={"server": {
        "name": f"nowhere-{infra['tag']}", "vcpu_count": 1, "vmem_size": 64, "prefer_zone": zone, "disks": ["1g"]}})
    assert r.status_code == 200, r.text
    sid = r.json()["server"]["id"]
    wait_for(lambda: (x := srv(controller, sid))["status"] == "sched_fail" and not x["active_task_id"], 90)
    before = srv(controller, sid)
    page = controller.api.get(f"{B}/servers", params={"search": f"nowhere-{infra['tag']}", "details": "true"})
    listed = [x for x in page.json()["servers"] if x["id"] == sid]
    assert before["fail_reason"] and listed and listed[0] in (before, srv(controller, sid)), (listed, before)


@pytest.mark.parametrize(("body", "fragment"), [
    ({"name": "x", "vcpu_count": 0}, "vcpu_count"),
    ({"name": "x", "vcpu_count": -1}, "vcpu_count"),
    ({"name": "x", "vcpu_count": 100000}, "vcpu_count"),
    ({"name": "x", "vmem_size": 0}, "vmem_size"),
    ({"name": "x", "vmem_size": "999t"}, "vmem_size"),
    ({"name": "x", "nets": ["no-such-net"]}, "no-such-net"),
    ({"name": "x", "nets": []}, "system disk"),  # nothing to boot from: not an empty shell of a guest
    ({"name": "x", "prefer_zone": "no-such-zone"}, "no-such-zone"),
    ({"name": "x", "disks": [{"image_id": "../../etc/passwd"}]}, "image"),
    ({"name": ""}, "name"),
    ({"name": "a" * 256}, "name"),
    ({"name": "a/../b"}, "name"),
    ({"name": "nul\x00x"}, "name"),
])
def test_bad_server_input_is_400(controller: Controller, body: dict[str, Any], fragment: str) -> None:
    r = controller.api.post(f"{B}/servers", json={"server": body})
    assert r.status_code == 400, r.text
    assert fragment in r.json()["details"] and "class" in r.json()


def test_sql_metacharacters_are_stored_verbatim(controller: Controller, infra: dict[str, str]) -> None:
    name = f"x'; DROP TABLE servers;-- {infra['tag']}"
    r = controller.api.post(f"{B}/servers", json={"server": {"name": name, "vcpu_count": 1, "vmem_size": 64,
                                                             "disks": ["1g"]}})
    assert r.status_code == 200, r.text
    sid = r.json()["server"]["id"]
    assert srv(controller, sid)["name"] == name
    listed = controller.api.get(f"{B}/servers", params={"search": "DROP TABLE"}).json()["servers"]
    assert name in [x["name"] for x in listed]
