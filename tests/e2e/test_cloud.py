"""Public clouds on every database (CI runs tests/e2e on SQLite, PostgreSQL and MariaDB): a cloud
account against moto's server is synced as a task, an elastic IP is allocated, associated with an
instance the sync brought in, dissociated and released, and another project sees none of it.
Kept short; the full AWS story is tests/integration/test_cloud_aws.py (SQLite).
"""
from __future__ import annotations

import json

import httpx

from tests.support.cloud import (  # noqa: F401  (fixtures: moto, ctl, cloud)
    SECRET,
    B,
    addresses,
    climc_json,
    cloud,
    ctl,
    drop_account,
    moto,
    server_status,
    subnet_of,
)
from tests.support.controller import Controller
from tests.support.moto import Moto


def test_a_cloud_sync_is_a_task_and_an_elastic_ip_goes_through_its_life_in_the_cloud(
        ctl: Controller, cloud: Moto) -> None:  # noqa: F811
    from tests.e2e.test_agent_support import outsider_token

    ec2 = cloud.client()
    stock = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    made = ec2.run_instances(ImageId=stock, MinCount=1, MaxCount=1, SubnetId=subnet_of(ec2, "us-east-1a"),
                             TagSpecifications=[{"ResourceType": "instance",
                                                 "Tags": [{"Key": "Name", "Value": "vm-db"}]}])
    iid = made["Instances"][0]["InstanceId"]
    # the account's first sync followed to its end by the create itself
    r = ctl.climc("cloud-account-create-aws", "aws-db", "--access-key", "testing", "--access-url", cloud.url,
                  "--region", "us-east-1", "--wait", "--timeout", "120", "-o", "json",
                  env={**ctl.env, "CLOUDPODS_CLOUD_SECRET": SECRET})
    assert r.returncode == 0, r.stderr
    task = climc_json(ctl, "task-show", json.loads(r.stdout)["sync_task_id"])
    assert (task["task_name"], task["status"]) == ("CloudAccountSyncTask", "done"), task
    srv = server_status(ctl, "vm-db", "running")
    # --wait: each verb returns once the cloud has answered (its task done), showing the eip as it ended
    r = ctl.climc("eip-create", "eip-db", "--manager", "aws-db", "--wait", "-o", "json")
    assert r.returncode == 0, r.stderr
    eip = json.loads(r.stdout)
    assert eip["status"] == "ready" and eip["cloudregion"] and eip["ip_addr"], eip
    r = ctl.climc("eip-associate", "eip-db", "vm-db", "--wait", "-o", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["associate_id"] == srv["id"], r.stdout + r.stderr
    assert addresses(ec2, **{"allocation-id": eip["external_id"]})[0]["InstanceId"] == iid
    # an unchanged cloud: the second sync writes nothing (the eip and its association included)
    r = ctl.climc("cloud-account-sync", "aws-db", "--wait", "--timeout", "120", "-o", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["changed"] == 0, r.stdout
    # another project sees none of it
    tok = outsider_token(ctl)
    with httpx.Client(base_url=ctl.url + B, headers={"X-Auth-Token": tok}, timeout=30) as c:
        assert c.get(f"/eips/{eip['id']}").status_code == 404
        assert c.post(f"/eips/{eip['id']}/dissociate", json={}).status_code == 404
        assert c.get("/tasks", params={"obj_id": eip["id"]}).json()["tasks"] == []
        r2 = c.post("/eips", json={"eip": {"name": "steal", "manager": "aws-db"}})
        assert r2.status_code == 400, r2.text
    r = ctl.climc("eip-dissociate", "eip-db", "--auto-delete", "--wait")
    assert r.returncode == 0 and "eip-db: released" in r.stderr, r.stderr
    assert ctl.api.get(f"{B}/eips/eip-db").status_code == 404
    assert addresses(ec2, **{"allocation-id": eip["external_id"]}) == []
    tasks = ctl.api.get(f"{B}/tasks", params={"obj_id": eip["id"], "limit": 20}).json()["tasks"]
    names = [t["task_name"] for t in tasks]
    assert sorted(names) == ["EipAllocateTask", "EipAssociateTask", "EipDissociateTask"], names
    ec2.terminate_instances(InstanceIds=[iid])
    drop_account(ctl, "aws-db")
