"""Public clouds end to end through climc, against moto's server playing AWS (PEERS.md "AWS").

A cloud account is created and synced (zones become executor hosts of the aws driver), a server
is created, stopped, started and deleted through climc and seen in EC2 with boto3; an instance
made directly in the cloud appears after a sync and goes after it is terminated; a page that fails
leaves the account ``partial`` with nothing deleted; refused keys are a clear error and make the
account ``unhealthy``; another project sees none of it.
"""
# ruff: noqa: F811  (the fixtures moto, ctl and cloud come from tests/support/cloud.py)
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.support.cloud import (  # noqa: F401  (fixtures: moto, ctl, cloud)
    SECRET,
    B,
    addresses,
    base_image,
    climc_json,
    cloud,
    create_account,
    ctl,
    drop_account,
    eip_row,
    instances,
    moto,
    server_status,
    servers,
    subnet_of,
    sync,
    wait_for,
)
from tests.support.controller import Controller
from tests.support.moto import FailingProxy, Moto, have_moto, moto_server


# ---- tests -----------------------------------------------------------------------------------------
def test_an_account_syncs_the_cloud_its_secret_stays_hidden_and_a_second_sync_writes_nothing(
        ctl: Controller, cloud: Moto) -> None:
    acct = create_account(ctl, "aws-a", cloud.url)
    assert acct["provider"] == "Aws" and acct["account"] == "testing" and "secret" not in acct
    r = sync(ctl, "aws-a")
    assert r.returncode == 0, r.stderr
    shown = climc_json(ctl, "cloud-account-show", "aws-a")
    assert shown["status"] == "connected" and shown["sync_status"] == "idle" and "secret" not in shown
    assert SECRET not in json.dumps(shown)
    if ctl.db_url.startswith("sqlite"):
        assert SECRET.encode() not in Path(ctl.data_dir / "cloudpods.db").read_bytes()
    ec2 = cloud.client()
    zones = {z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]}
    hosts = ctl.api.get(f"{B}/hosts", params={"limit": 100, "host_type": "aws"}).json()["hosts"]
    assert {h["name"] for h in hosts} == {f"aws-a-{z}" for z in zones}
    assert all(h["target"] == "executor" and h["driver"] == "aws" and h["host_status"] == "online" for h in hosts)
    assert all(h.get("driver_config", {}).get("secret") == "******" for h in hosts)
    nets = ctl.api.get(f"{B}/networks", params={"limit": 100}).json()["networks"]
    subnets = {s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]}
    assert subnets <= {n["name"] for n in nets}
    # what the sync made changes in the cloud, not here: a clear refusal, nothing lost
    some = sorted(subnets)[0]
    r = ctl.climc("network-delete", some)
    assert r.returncode != 0 and "synced from a cloud" in r.stderr, r.stderr
    assert ctl.api.get(f"{B}/networks/{some}").status_code == 200
    provs = ctl.api.get(f"{B}/cloudproviders").json()["cloudproviders"]
    assert [p["cloudaccount"] for p in provs] == ["aws-a"] and provs[0]["id"] == shown["cloudprovider_id"]
    report = climc_json(ctl, "cloud-account-show", "aws-a")["sync_report"]
    assert report["changed"] > 0
    r = sync(ctl, "aws-a")
    assert r.returncode == 0, r.stderr
    again = climc_json(ctl, "cloud-account-show", "aws-a")["sync_report"]
    assert again["changed"] == 0, again
    drop_account(ctl, "aws-a")
    assert ctl.api.get(f"{B}/hosts", params={"host_type": "aws"}).json()["hosts"] == []


def test_a_server_created_stopped_started_and_deleted_through_climc_is_an_ec2_instance(
        ctl: Controller, cloud: Moto) -> None:
    ec2 = cloud.client()
    ami = base_image(ec2)
    create_account(ctl, "aws-b", cloud.url)
    assert sync(ctl, "aws-b").returncode == 0
    images = ctl.api.get(f"{B}/cachedimages").json()["cachedimages"]
    assert [(i["name"], i["external_id"], i["status"]) for i in images] == [("cp-base", ami, "active")]
    subnet = subnet_of(ec2, "us-east-1a")
    r = ctl.climc("server-create", "vm-aws", "--ncpu", "1", "--mem-spec", "1g", "--disk", "cp-base", "--net", subnet,
                  "--host", "aws-b-us-east-1a", "--hypervisor", "aws", "--auto-start")
    assert r.returncode == 0, r.stderr
    srv = server_status(ctl, "vm-aws", "running")
    found = instances(ec2, **{"tag:cloudpods:server-id": srv["id"]})
    assert len(found) == 1 and found[0]["State"]["Name"] == "running", found
    inst = found[0]
    assert inst["ImageId"] == ami and inst["SubnetId"] == subnet and inst["InstanceType"] == "t2.micro"
    assert inst["PrivateIpAddress"] in json.dumps(srv), (inst["PrivateIpAddress"], srv.get("ips"))
    assert ctl.climc("server-stop", "vm-aws").returncode == 0
    server_status(ctl, "vm-aws", "ready")
    assert instances(ec2, **{"instance-id": inst["InstanceId"]})[0]["State"]["Name"] == "stopped"
    assert ctl.climc("server-start", "vm-aws").returncode == 0
    server_status(ctl, "vm-aws", "running")
    assert instances(ec2, **{"instance-id": inst["InstanceId"]})[0]["State"]["Name"] == "running"
    assert ctl.climc("server-restart", "vm-aws").returncode == 0
    server_status(ctl, "vm-aws", "running")
    # a verb the zone's driver does not declare is refused before anything starts
    r = ctl.climc("server-suspend", "vm-aws")
    assert r.returncode != 0 and "suspend" in r.stderr, r.stderr
    # a data disk made here becomes an EBS volume of the instance's zone, attached while it runs
    r = ctl.climc("disk-create", "vol-a", "2g", "--storage", "aws-b-us-east-1a-storage")
    assert r.returncode == 0, r.stderr
    vol_id = climc_json(ctl, "disk-show", "vol-a")["id"]
    assert ctl.climc("server-attach-disk", "vm-aws", "vol-a").returncode == 0
    wait_for(lambda: any(d["id"] == vol_id for d in server_status(ctl, "vm-aws", "running")["disks_info"]), 90,
             "vol-a attached")
    vols = ec2.describe_volumes(Filters=[{"Name": "tag:cloudpods:disk-id", "Values": [vol_id]}])["Volumes"]
    assert len(vols) == 1 and vols[0]["Size"] == 2 and vols[0]["Attachments"][0]["InstanceId"] == inst["InstanceId"]
    assert ctl.climc("server-detach-disk", "vm-aws", "vol-a").returncode == 0
    wait_for(lambda: ec2.describe_volumes(VolumeIds=[vols[0]["VolumeId"]])["Volumes"][0]["State"] == "available",
             90, "vol-a detached in EC2")
    # a disk deleted here takes its volume with it
    assert ctl.climc("disk-create", "vol-b", "1g", "--storage", "aws-b-us-east-1a-storage").returncode == 0
    vol_b = climc_json(ctl, "disk-show", "vol-b")["id"]
    assert ctl.climc("server-attach-disk", "vm-aws", "vol-b").returncode == 0
    wait_for(lambda: any(d["id"] == vol_b for d in server_status(ctl, "vm-aws", "running")["disks_info"]), 90,
             "vol-b attached")
    assert ctl.climc("server-detach-disk", "vm-aws", "vol-b").returncode == 0
    wait_for(lambda: all(d["id"] != vol_b for d in server_status(ctl, "vm-aws", "running")["disks_info"]), 90,
             "vol-b detached")
    assert ctl.climc("disk-delete", "vol-b").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/disks/{vol_b}").status_code == 404, 90, "vol-b deleted")
    assert ec2.describe_volumes(Filters=[{"Name": "tag:cloudpods:disk-id", "Values": [vol_b]}])["Volumes"] == []
    # an account with rows made here that no sync linked yet is not deleted under them
    assert ctl.climc("cloud-account-disable", "aws-b").returncode == 0
    r = ctl.climc("cloud-account-delete", "aws-b")
    assert r.returncode != 0 and "made here" in r.stderr, r.stderr
    assert ctl.climc("cloud-account-enable", "aws-b").returncode == 0
    # a sync links the row to its instance: no second server appears for it
    assert sync(ctl, "aws-b").returncode == 0
    mine = [s for s in servers(ctl) if s["name"] == "vm-aws"]
    assert len(mine) == 1 and mine[0]["external_id"] == inst["InstanceId"], mine
    assert climc_json(ctl, "disk-show", "vol-a")["external_id"] == vols[0]["VolumeId"]  # linked, not doubled
    assert len([d for d in ctl.api.get(f"{B}/disks", params={"limit": 200}).json()["disks"]
                if d.get("external_id") == vols[0]["VolumeId"]]) == 1
    assert ctl.climc("server-delete", "-f", "vm-aws").returncode == 0
    server_status(ctl, "vm-aws", "gone")
    assert instances(ec2, **{"instance-id": inst["InstanceId"]})[0]["State"]["Name"] == "terminated"
    drop_account(ctl, "aws-b")


def test_an_instance_made_in_the_cloud_appears_after_a_sync_obeys_climc_and_goes_when_terminated(
        ctl: Controller, cloud: Moto) -> None:
    ec2 = cloud.client()
    stock = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    iid = ec2.run_instances(ImageId=stock, MinCount=1, MaxCount=1, InstanceType="t3.small",
                            SubnetId=subnet_of(ec2, "us-east-1b"), TagSpecifications=[{
                                "ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "made-in-cloud"}]}]
                            )["Instances"][0]["InstanceId"]
    create_account(ctl, "aws-c", cloud.url)
    assert sync(ctl, "aws-c").returncode == 0
    srv = server_status(ctl, "made-in-cloud", "running")
    assert srv["external_id"] == iid and srv["host"] == "aws-c-us-east-1b" and srv["vcpu_count"] == 2
    ip = instances(ec2, **{"instance-id": iid})[0]["PrivateIpAddress"]
    assert ip in json.dumps(srv)
    # the imported server is operable like any other
    assert ctl.climc("server-stop", "made-in-cloud").returncode == 0
    server_status(ctl, "made-in-cloud", "ready")
    assert instances(ec2, **{"instance-id": iid})[0]["State"]["Name"] == "stopped"
    ec2.terminate_instances(InstanceIds=[iid])
    assert sync(ctl, "aws-c").returncode == 0
    server_status(ctl, "made-in-cloud", "gone")
    drop_account(ctl, "aws-c")


def test_the_scheduler_places_a_cloud_server_in_the_zone_of_its_network(ctl: Controller, cloud: Moto) -> None:
    ec2 = cloud.client()
    base_image(ec2)
    create_account(ctl, "aws-s", cloud.url)
    assert sync(ctl, "aws-s").returncode == 0
    r = ctl.climc("server-create", "placed-vm", "--ncpu", "2", "--mem-spec", "4g", "--disk", "cp-base", "--net",
                  subnet_of(ec2, "us-east-1c"), "--hypervisor", "aws")
    assert r.returncode == 0, r.stderr
    srv = server_status(ctl, "placed-vm", "ready")  # created stopped, as asked
    assert srv["host"] == "aws-s-us-east-1c", srv
    inst = instances(ec2, **{"tag:cloudpods:server-id": srv["id"]})
    assert len(inst) == 1 and inst[0]["State"]["Name"] == "stopped" and inst[0]["InstanceType"] == "t2.medium"
    # no cloud server lands on this cloud's own (kvm) hosts, and no kvm server on a cloud's zone
    hosts = {h["id"]: h for h in ctl.api.get(f"{B}/hosts", params={"limit": 200}).json()["hosts"]}
    assert all(h["host_type"] == "aws" for h in hosts.values() if h["name"].startswith("aws-s-"))
    assert ctl.climc("server-delete", "-f", "placed-vm").returncode == 0
    server_status(ctl, "placed-vm", "gone")
    drop_account(ctl, "aws-s")


def test_a_failing_page_leaves_the_account_partial_and_deletes_nothing(ctl: Controller, cloud: Moto) -> None:
    ec2 = cloud.client()
    stock = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    # one reservation each: EC2 (and moto) page DescribeInstances by reservation
    made = [ec2.run_instances(ImageId=stock, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                              TagSpecifications=[{"ResourceType": "instance",
                                                  "Tags": [{"Key": "Name", "Value": "bulk"}]}])["Instances"][0]
            for _ in range(12)]
    proxy = FailingProxy(cloud.url)
    try:
        create_account(ctl, "aws-p", proxy.url, "--page-size", "5")
        assert sync(ctl, "aws-p").returncode == 0
        assert len([s for s in servers(ctl) if s["name"] == "bulk"]) == 12
        ec2.terminate_instances(InstanceIds=[made[0]["InstanceId"]])
        # the second page of the instance listing fails
        proxy.fail = lambda body: "Action=DescribeInstances" in body and "NextToken=" in body
        r = sync(ctl, "aws-p")
        assert r.returncode == 1 and "partial" in r.stderr, (r.stdout, r.stderr)
        assert proxy.failed >= 1
        acct = climc_json(ctl, "cloud-account-show", "aws-p")
        assert acct["status"] == "partial" and "servers" in acct["status_reason"], acct
        assert "InjectedFailure" in acct["status_reason"]
        assert len([s for s in servers(ctl) if s["name"] == "bulk"]) == 12  # nothing it could not see is gone
        proxy.fail = lambda body: False
        assert sync(ctl, "aws-p").returncode == 0
        assert climc_json(ctl, "cloud-account-show", "aws-p")["status"] == "connected"
        assert len([s for s in servers(ctl) if s["name"] == "bulk"]) == 11
    finally:
        proxy.close()
    drop_account(ctl, "aws-p")


def test_refused_keys_are_a_clear_error_and_make_the_account_unhealthy(ctl: Controller) -> None:
    have_moto()
    with moto_server(auth_free_calls=4) as m:  # then every call needs keys IAM knows
        iam = m.client("iam")
        iam.create_user(UserName="cp")
        iam.put_user_policy(UserName="cp", PolicyName="all", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="cp")["AccessKey"]
        spare = iam.create_access_key(UserName="cp")["AccessKey"]
        r = ctl.climc("cloud-account-create-aws", "aws-bad", "--access-key", "AKIAWRONGWRONG", "--access-url", m.url,
                      "--region", "us-east-1", "--no-sync", env={**ctl.env, "CLOUDPODS_CLOUD_SECRET": "nope"})
        assert r.returncode == 1 and "refused the credentials" in r.stderr and "AuthFailure" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert ctl.api.get(f"{B}/cloudaccounts/aws-bad").status_code == 404  # nothing stored
        create_account(ctl, "aws-k", m.url, key=key["AccessKeyId"], secret=key["SecretAccessKey"])
        assert sync(ctl, "aws-k").returncode == 0
        hosts_before = len(ctl.api.get(f"{B}/hosts", params={"host_type": "aws", "limit": 100}).json()["hosts"])
        # the key is revoked in the cloud
        m.client("iam", key["AccessKeyId"], key["SecretAccessKey"]).delete_access_key(
            UserName="cp", AccessKeyId=key["AccessKeyId"])
        r = sync(ctl, "aws-k")
        assert r.returncode == 1 and "unhealthy" in r.stderr and "refused the credentials" in r.stderr, r.stderr
        acct = climc_json(ctl, "cloud-account-show", "aws-k")
        assert acct["status"] == "unhealthy" and "AuthFailure" in acct["status_reason"]
        assert len(ctl.api.get(f"{B}/hosts", params={"host_type": "aws", "limit": 100}).json()["hosts"]) \
            == hosts_before  # nothing deleted
        # refused new keys change nothing; good ones make it connected again
        r = ctl.climc("cloud-account-update-credential", "aws-k", "--access-key", "AKIAWRONGWRONG",
                      env={**ctl.env, "CLOUDPODS_CLOUD_SECRET": "nope"})
        assert r.returncode == 1 and "refused the credentials" in r.stderr
        assert climc_json(ctl, "cloud-account-show", "aws-k")["account"] == key["AccessKeyId"]
        r = ctl.climc("cloud-account-update-credential", "aws-k", "--access-key", spare["AccessKeyId"],
                      env={**ctl.env, "CLOUDPODS_CLOUD_SECRET": spare["SecretAccessKey"]})
        assert r.returncode == 0, r.stderr
        assert sync(ctl, "aws-k").returncode == 0
        assert climc_json(ctl, "cloud-account-show", "aws-k")["status"] == "connected"
        drop_account(ctl, "aws-k")


def test_another_project_sees_no_account_and_nothing_it_synced(ctl: Controller, cloud: Moto) -> None:
    from tests.e2e.test_agent_support import outsider_token

    ec2 = cloud.client()
    base_image(ec2)
    stock = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.run_instances(ImageId=stock, MinCount=1, MaxCount=1, TagSpecifications=[{
        "ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "private-vm"}]}])
    acct = create_account(ctl, "aws-t", cloud.url)
    assert sync(ctl, "aws-t").returncode == 0
    srv = server_status(ctl, "private-vm", "running")
    tok = outsider_token(ctl, "admin")
    with httpx.Client(base_url=ctl.url + B, headers={"X-Auth-Token": tok}, timeout=30) as c:
        assert c.get("/cloudaccounts").json()["cloudaccounts"] == []
        assert c.get("/cloudproviders").json()["cloudproviders"] == []
        assert c.get("/cachedimages").json()["cachedimages"] == []
        assert c.get(f"/cloudaccounts/{acct['id']}").status_code == 404
        for action in ("sync", "disable", "update-credential"):
            assert c.post(f"/cloudaccounts/{acct['id']}/{action}", json={}).status_code == 404, action
        assert c.delete(f"/cloudaccounts/{acct['id']}").status_code == 404
        assert c.get(f"/servers/{srv['id']}").status_code == 404
        assert c.post(f"/servers/{srv['id']}/stop", json={}).status_code == 404
        assert all(n["name"] != subnet_of(ec2, "us-east-1a") for n in c.get("/networks").json()["networks"])
        r = c.post("/servers", json={"server": {"name": "steal", "vcpu_count": 1, "vmem_size": 1024,
                                                "disks": ["cp-base"], "hypervisor": "aws"}})
        assert r.status_code == 400 and "cp-base" in r.text, r.text
    assert climc_json(ctl, "cloud-account-show", "aws-t")["enabled"] is True  # nothing changed for the owner
    drop_account(ctl, "aws-t")


def test_an_elastic_ip_is_allocated_associated_dissociated_and_released_in_ec2(ctl: Controller, cloud: Moto) -> None:
    from tests.e2e.test_agent_support import outsider_token

    ec2 = cloud.client()
    base_image(ec2)
    create_account(ctl, "aws-e", cloud.url)
    assert sync(ctl, "aws-e").returncode == 0
    r = ctl.climc("eip-create", "eip-a", "--manager", "aws-e", "--region", "us-east-1", "--bandwidth", "10")
    assert r.returncode == 0, r.stderr
    eip = eip_row(ctl, "eip-a")
    assert eip["status"] == "ready" and eip["manager"] == "aws-e" and eip["external_id"].startswith("eipalloc-"), eip
    found = addresses(ec2, **{"tag:cloudpods:eip-id": eip["id"]})
    assert [(a["AllocationId"], a["PublicIp"]) for a in found] == [(eip["external_id"], eip["ip_addr"])]
    tasks = ctl.api.get(f"{B}/tasks", params={"obj_id": eip["id"]}).json()["tasks"]
    assert [t["task_name"] for t in tasks] == ["EipAllocateTask"] and tasks[0]["status"] == "done", tasks
    # bad input: a clear refusal, nothing made
    r = ctl.climc("eip-create", "eip-x", "--manager", "aws-e", "--region", "mars-1")
    assert r.returncode != 0 and "mars-1" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = ctl.climc("eip-create", "eip-x", "--manager", "no-such-provider")
    assert r.returncode != 0 and "no-such-provider" in r.stderr, r.stderr
    assert ctl.api.get(f"{B}/eips/eip-x").status_code == 404
    # associated with a server made here: the cloud's address points at its instance
    r = ctl.climc("server-create", "vm-eip", "--ncpu", "1", "--mem-spec", "1g", "--disk", "cp-base", "--net",
                  subnet_of(ec2, "us-east-1a"), "--host", "aws-e-us-east-1a", "--hypervisor", "aws", "--auto-start")
    assert r.returncode == 0, r.stderr
    srv = server_status(ctl, "vm-eip", "running")
    iid = instances(ec2, **{"tag:cloudpods:server-id": srv["id"]})[0]["InstanceId"]
    r = ctl.climc("eip-associate", "eip-a", "vm-eip")
    assert r.returncode == 0, r.stderr
    eip = eip_row(ctl, "eip-a")
    assert eip["status"] == "ready" and eip["associate_id"] == srv["id"] and eip["associate_name"] == "vm-eip", eip
    assert addresses(ec2, **{"allocation-id": eip["external_id"]})[0]["InstanceId"] == iid
    r = ctl.climc("eip-delete", "eip-a")
    assert r.returncode != 0 and "dissociate it first" in r.stderr, r.stderr
    # an address made directly in the cloud appears after a sync; the sync keeps the association
    other = ec2.allocate_address(Domain="vpc")
    assert sync(ctl, "aws-e").returncode == 0
    mine = [e for e in ctl.api.get(f"{B}/eips", params={"limit": 100}).json()["eips"] if e["manager"] == "aws-e"]
    assert sorted(e["external_id"] for e in mine) == sorted([eip["external_id"], other["AllocationId"]]), mine
    assert eip_row(ctl, "eip-a")["associate_id"] == srv["id"]
    # another project sees none of it and can change none of it
    tok = outsider_token(ctl, "admin")
    with httpx.Client(base_url=ctl.url + B, headers={"X-Auth-Token": tok}, timeout=30) as c:
        assert all(e["id"] != eip["id"] for e in c.get("/eips", params={"limit": 100}).json()["eips"])
        assert c.get(f"/eips/{eip['id']}").status_code == 404
        for action in ("associate", "dissociate"):
            assert c.post(f"/eips/{eip['id']}/{action}", json={"instance_id": srv["id"]}).status_code == 404
        assert c.delete(f"/eips/{eip['id']}").status_code == 404
        resp = c.post("/eips", json={"eip": {"name": "steal", "manager": "aws-e"}})
        assert resp.status_code == 400 and "aws-e" in resp.text, resp.text
        resp = c.post("/eips", json={"eip": {"name": "steal", "cloudregion": eip["cloudregion_id"]}})
        assert resp.status_code == 400, resp.text
    assert eip_row(ctl, "eip-a")["associate_id"] == srv["id"]  # nothing changed for the owner
    # dissociated, then released with --auto-delete: gone here and in the cloud
    assert ctl.climc("eip-dissociate", "eip-a").returncode == 0
    eip = eip_row(ctl, "eip-a")
    assert eip["status"] == "ready" and not eip.get("associate_id"), eip
    assert not addresses(ec2, **{"allocation-id": eip["external_id"]})[0].get("InstanceId")
    assert ctl.climc("eip-associate", "eip-a", "vm-eip").returncode == 0
    assert eip_row(ctl, "eip-a")["associate_id"] == srv["id"]
    assert ctl.climc("eip-dissociate", "eip-a", "--auto-delete").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/eips/eip-a").status_code == 404, 90, "eip-a released")
    assert addresses(ec2, **{"allocation-id": eip["external_id"]}) == []
    # eip-delete releases a synced address too
    synced = next(e for e in mine if e["external_id"] == other["AllocationId"])
    assert ctl.climc("eip-delete", synced["id"]).returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/eips/{synced['id']}").status_code == 404, 90, "synced eip released")
    assert addresses(ec2, **{"allocation-id": other["AllocationId"]}) == []
    assert ctl.climc("server-delete", "-f", "vm-eip").returncode == 0
    server_status(ctl, "vm-eip", "gone")
    drop_account(ctl, "aws-e")


def ec2_groups(ec2: Any, iid: str) -> dict[str, dict[str, Any]]:
    """The instance's security groups by the id of the group here they copy ("" for the cloud's own)."""
    inst = instances(ec2, **{"instance-id": iid})[0]
    ids = [g["GroupId"] for g in inst["SecurityGroups"]]
    out = {}
    for g in ec2.describe_security_groups(GroupIds=ids)["SecurityGroups"]:
        out[{t["Key"]: t["Value"] for t in g.get("Tags") or []}.get("cloudpods:secgroup-id", "")] = g
    return out


def ingress(g: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {(p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), r.get("CidrIp") or r.get("GroupId"))
            for p in g["IpPermissions"] for r in [*p.get("IpRanges", []), *p.get("UserIdGroupPairs", [])]}


def test_security_groups_and_keypairs_of_a_server_are_pushed_to_ec2(ctl: Controller, cloud: Moto) -> None:
    ec2 = cloud.client()
    base_image(ec2)
    create_account(ctl, "aws-g", cloud.url)
    assert sync(ctl, "aws-g").returncode == 0
    web = climc_json(ctl, "secgroup-create", "web-g")
    assert ctl.climc("secgroup-add-rule", "web-g", "--protocol", "tcp", "--ports", "22,8000-8080",
                     "--cidr", "10.1.0.0/16").returncode == 0
    assert ctl.climc("secgroup-add-rule", "web-g", "--protocol", "tcp", "--ports", "443",
                     "--peer-secgroup", "web-g").returncode == 0
    assert ctl.climc("secgroup-add-rule", "web-g", "--direction", "out", "--protocol", "any").returncode == 0
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pub = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    assert ctl.climc("keypair-create", "kp-g", "--public-key", pub).returncode == 0
    r = ctl.climc("server-create", "vm-sg", "--ncpu", "1", "--mem-spec", "1g", "--disk", "cp-base", "--net",
                  subnet_of(ec2, "us-east-1a"), "--host", "aws-g-us-east-1a", "--hypervisor", "aws", "--auto-start",
                  "--secgroup", "web-g", "--keypair", "kp-g")
    assert r.returncode == 0, r.stderr
    srv = server_status(ctl, "vm-sg", "running")
    inst = instances(ec2, **{"tag:cloudpods:server-id": srv["id"]})[0]
    iid = inst["InstanceId"]
    # the keypair was imported into EC2 and the instance made with it
    assert inst.get("KeyName", "").startswith("cloudpods-"), inst.get("KeyName")
    assert ec2.describe_key_pairs(KeyNames=[inst["KeyName"]])["KeyPairs"]
    # the group is an EC2 security group with the rules translated, and the instance is in it alone
    groups = wait_for(lambda: (lambda got: got if list(got) == [web["id"]] else None)(ec2_groups(ec2, iid)), 60,
                      "the instance in the pushed web-g")
    g = groups[web["id"]]
    assert g["GroupName"] == f"cloudpods-{web['id']}" and g["VpcId"] == inst["VpcId"]
    assert ingress(g) == {("tcp", 22, 22, "10.1.0.0/16"), ("tcp", 8000, 8080, "10.1.0.0/16"),
                          ("tcp", 443, 443, g["GroupId"])}, ingress(g)
    assert [(p["IpProtocol"], p["IpRanges"]) for p in g["IpPermissionsEgress"]] == [("-1", [{"CidrIp": "0.0.0.0/0"}])]
    # a rule change here reaches EC2 without anything else done
    rule = next(x for x in climc_json(ctl, "secgroup-show", "web-g")["rules"] if x["ports"] == "22,8000-8080")
    assert ctl.climc("secgroup-rule-update", rule["id"], "--ports", "2222").returncode == 0
    wait_for(lambda: ingress(ec2_groups(ec2, iid)[web["id"]]) == {("tcp", 2222, 2222, "10.1.0.0/16"),
                                                                  ("tcp", 443, 443, g["GroupId"])}, 60,
             "the changed rule in EC2")
    # a second group added to the server: the instance is in both
    assert ctl.climc("secgroup-create", "ops-g").returncode == 0
    ops = climc_json(ctl, "secgroup-show", "ops-g")
    assert ctl.climc("server-add-secgroup", "vm-sg", "ops-g").returncode == 0
    wait_for(lambda: set(ec2_groups(ec2, iid)) == {web["id"], ops["id"]}, 60, "the instance in web-g and ops-g")
    # the sync brings no copy back as a group of its own, and changes nothing here
    assert sync(ctl, "aws-g").returncode == 0
    names = [x["name"] for x in ctl.api.get(f"{B}/secgroups", params={"limit": 500}).json()["secgroups"]]
    assert not any(n.startswith("cloudpods-") for n in names), names
    shown = ctl.api.get(f"{B}/servers/vm-sg").json()["server"]
    assert sorted(x["name"] for x in shown["secgroups"]) == ["ops-g", "web-g"]
    # an instance made in the cloud in the pushed group comes in that group here
    stock = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.run_instances(ImageId=stock, MinCount=1, MaxCount=1, SubnetId=subnet_of(ec2, "us-east-1a"),
                      SecurityGroupIds=[g["GroupId"]], TagSpecifications=[{
                          "ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "in-web-g"}]}])
    assert sync(ctl, "aws-g").returncode == 0
    imported = server_status(ctl, "in-web-g", "running")
    assert [x["name"] for x in imported["secgroups"]] == ["web-g"], imported["secgroups"]
    for name in ("vm-sg", "in-web-g"):
        assert ctl.climc("server-delete", "-f", name).returncode == 0
        server_status(ctl, name, "gone")
    drop_account(ctl, "aws-g")


def test_a_sync_is_a_task_and_can_be_narrowed_to_regions_and_resources(ctl: Controller, cloud: Moto) -> None:
    east, west = cloud.client(), cloud.client_in("us-west-2")
    east.allocate_address(Domain="vpc")
    west_ip = west.allocate_address(Domain="vpc")["AllocationId"]
    create_account(ctl, "aws-y", cloud.url, "--region", "us-west-2")  # us-east-1 and us-west-2
    r = ctl.climc("cloud-account-sync", "aws-y", "--wait", "--timeout", "120", "-o", "json")
    assert r.returncode == 0, r.stderr
    tid = json.loads(r.stdout)["sync_task_id"]
    task = climc_json(ctl, "task-show", tid)
    assert task["task_name"] == "CloudAccountSyncTask" and task["status"] == "done" and task["obj_name"] == "aws-y"
    acct = climc_json(ctl, "cloud-account-show", "aws-y")
    assert acct["sync_task_id"] == tid
    eips = lambda: {e["external_id"] for e in ctl.api.get(f"{B}/eips", params={"limit": 100}).json()["eips"]  # noqa: E731
                    if e["manager"] == "aws-y"}
    assert west_ip in eips() and len(eips()) == 2
    # narrowed to one region and to eips: only those are listed, and a narrowed sync deletes nothing
    west.release_address(AllocationId=west_ip)
    made = east.allocate_address(Domain="vpc")["AllocationId"]
    east.create_vpc(CidrBlock="10.77.0.0/16")
    vpcs_before = len(ctl.api.get(f"{B}/vpcs", params={"limit": 200}).json()["vpcs"])
    r = ctl.climc("cloud-account-sync", "aws-y", "--region", "us-east-1", "--resources", "eip", "--wait",
                  "--timeout", "120", "-o", "json")
    assert r.returncode == 0, r.stderr
    report = climc_json(ctl, "cloud-account-show", "aws-y")["sync_report"]
    assert report["scope"] == {"region": ["us-east-1"], "resources": ["eip"]}
    assert set(report["kinds"]) == {"cloudregions", "zones", "eips"}, report["kinds"].keys()
    assert made in eips() and west_ip in eips()  # the west one was not seen: kept
    assert len(ctl.api.get(f"{B}/vpcs", params={"limit": 200}).json()["vpcs"]) == vpcs_before
    assert json.loads(r.stdout)["sync_task_id"] != tid
    # a full sync then sees everything again, and deletes what is gone
    assert sync(ctl, "aws-y").returncode == 0
    assert west_ip not in eips() and made in eips()
    # bad input: one readable line, nothing queued
    for args, fragment in ((("--region", "mars-1"), "mars-1"), (("--resources", "rds"), "rds")):
        r = ctl.climc("cloud-account-sync", "aws-y", *args)
        assert r.returncode != 0 and fragment in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert climc_json(ctl, "cloud-account-show", "aws-y")["sync_status"] == "idle"
    drop_account(ctl, "aws-y")


def test_a_create_names_its_cloud_by_cloudprovider_and_region_and_never_another_projects(
        ctl: Controller, cloud: Moto) -> None:
    from core.scheduler.filters.zone import NOT_USABLE, WRONG_REGION
    from tests.e2e.test_agent_support import outsider_token

    ec2 = cloud.client()
    base_image(ec2)
    create_account(ctl, "aws-m", cloud.url, "--region", "us-west-2")  # us-east-1 and us-west-2
    assert sync(ctl, "aws-m").returncode == 0
    prov = climc_json(ctl, "cloud-account-show", "aws-m")["cloudprovider_id"]
    east = next(r for r in ctl.api.get(f"{B}/cloudregions", params={"limit": 100}).json()["cloudregions"]
                if r["name"] == "aws-m-us-east-1")
    subnet = subnet_of(ec2, "us-east-1b")
    # --manager and --region (the cloud's own region name) are enough: the hypervisor is the cloud's
    r = ctl.climc("server-create", "vm-m", "--ncpu", "1", "--mem-spec", "1g", "--disk", "cp-base", "--net", subnet,
                  "--manager", "aws-m", "--region", "us-east-1", "--auto-start")
    assert r.returncode == 0, r.stderr
    srv = server_status(ctl, "vm-m", "running")
    assert srv["host"] == "aws-m-us-east-1b" and srv["hypervisor"] == "aws", srv
    assert "aws" in ctl.api.get(f"{B}/capabilities").json()["hypervisors"]
    assert len(instances(ec2, **{"tag:cloudpods:server-id": srv["id"]})) == 1
    # the other region of the same cloud: the scheduler says why nothing fits, nothing is made
    body = {"server": {"name": "vm-m-west", "vcpu_count": 1, "vmem_size": 1024, "disks": ["cp-base"],
                       "nets": [subnet], "prefer_manager_id": "aws-m", "prefer_region_id": "us-west-2"}}
    fc = ctl.api.post(f"{B}/servers/forecast", json=body)
    assert fc.status_code == 200 and fc.json()["forecast"]["can_create"] is False, fc.text
    assert WRONG_REGION in fc.json()["forecast"]["explanation"], fc.text
    # bad input: one readable line naming what is wrong, nothing made
    for args, fragment in ((("--manager", "aws-m", "--region", "mars-1"), "mars-1"),
                           (("--manager", "no-such-cloud"), "no-such-cloud")):
        r = ctl.climc("server-create", "vm-m-bad", "--disk", "cp-base", "--net", subnet, *args)
        assert r.returncode != 0 and fragment in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert ctl.api.get(f"{B}/servers/vm-m-bad").status_code == 404
    # another project can name neither the cloudprovider nor its regions, and is never placed on them
    tok = outsider_token(ctl, "admin")
    with httpx.Client(base_url=ctl.url + B, headers={"X-Auth-Token": tok}, timeout=30) as c:
        for ref in ({"prefer_manager_id": prov}, {"prefer_manager_id": "aws-m"}, {"prefer_region_id": east["id"]},
                    {"prefer_region_id": east["name"]}):
            resp = c.post("/servers", json={"server": {"name": "steal", "vcpu_count": 1, "vmem_size": 1024,
                                                       "hypervisor": "aws", **ref}})
            assert resp.status_code == 400 and "not found" in resp.text, (ref, resp.text)
        # the other project's zones are not its capacity: not in its capabilities, never placed on
        assert "aws" not in c.get("/capabilities").json()["hypervisors"]
        fc = c.post("/servers/forecast", json={"server": {"name": "steal", "vcpu_count": 1, "vmem_size": 1024,
                                                          "hypervisor": "aws"}})
        assert fc.status_code == 200 and fc.json()["forecast"]["can_create"] is False, fc.text
        assert NOT_USABLE in fc.json()["forecast"]["explanation"], fc.text
        assert c.get("/servers", params={"name": "steal"}).json()["servers"] == []
    assert ctl.climc("server-delete", "-f", "vm-m").returncode == 0
    server_status(ctl, "vm-m", "gone")
    drop_account(ctl, "aws-m")
