"""Cloud account sync: how long a sync of an AWS account takes, and what a second sync writes.

    PYTHONPATH=. .venv/bin/python bench/cloud_sync.py [--instances 1000] [--disks 200] [--secgroups 50]
        [--list-threads 0,4]

moto's server plays AWS on loopback (PEERS.md "AWS"); the inventory is made there with boto3
(instances in separate reservations, so DescribeInstances pages as EC2 does; data volumes; security
groups with two rules each). A controller (SQLite) gets an account (one region) and
``climc cloud-account-sync --wait`` runs twice: the figures are each sync's own time (the
account's report) and the wall time of the command; the second sync must change nothing. With
``--list-threads 0,4`` the same inventory is synced by a controller per setting (0: each page
listed by the sync's own thread, one at a time; N: N listing threads run ahead of the applying).
Target (issue 15): <= 30 s for 1,000 instances, 200 disks, 50 secgroups; an unchanged second sync
writes nothing. Machine noise: a shared 2-core box moves these by 20 % or more.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    from tests.support.moto import moto_server

    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--disks", type=int, default=200)
    ap.add_argument("--secgroups", type=int, default=50)
    ap.add_argument("--list-threads", default="4", help="comma-separated CLOUDPODS_CLOUDSYNC_LIST_THREADS to compare")
    a = ap.parse_args()
    with moto_server() as m, tempfile.TemporaryDirectory(prefix="bench-cloud-") as d:
        ec2 = m.client()
        t0 = time.monotonic()
        stock = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        for i in range(a.instances):
            ec2.run_instances(ImageId=stock, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                              TagSpecifications=[{"ResourceType": "instance",
                                                  "Tags": [{"Key": "Name", "Value": f"b-{i}"}]}])
        for _ in range(a.disks):
            ec2.create_volume(Size=8, AvailabilityZone="us-east-1a")
        vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
        for i in range(a.secgroups):
            g = ec2.create_security_group(GroupName=f"sg-{i}", Description="bench", VpcId=vpc)["GroupId"]
            ec2.authorize_security_group_ingress(GroupId=g, IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]},
                {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        print(f"inventory made in moto: {a.instances} instances, {a.disks} data volumes, {a.secgroups} secgroups "
              f"in {time.monotonic() - t0:.1f} s")
        # the floor: the same listings with boto3 alone (the pages the sync asks for, nothing applied)
        floor = {}
        for op, key in (("describe_instances", "Reservations"), ("describe_volumes", "Volumes"),
                        ("describe_security_groups", "SecurityGroups"), ("describe_subnets", "Subnets")):
            t = time.monotonic()
            n, token = 0, ""
            while True:
                out = getattr(ec2, op)(MaxResults=500, **({"NextToken": token} if token else {}))
                n += len(out[key])
                token = out.get("NextToken") or ""
                if not token:
                    break
            floor[op] = time.monotonic() - t
        print("moto alone (boto3 listing what the sync lists, pages of 500): " + ", ".join(
            f"{k} {v:.2f} s" for k, v in floor.items()) + f"; total {sum(floor.values()):.2f} s")
        for threads in a.list_threads.split(","):
            run_controller(Path(d) / f"t{threads}", m.url, int(threads))


def run_controller(data: Path, url: str, threads: int) -> None:
    from tests.support.controller import Controller

    data.mkdir(parents=True, exist_ok=True)
    ctl = Controller.init(data, db="sqlite")
    ctl.env["CLOUDPODS_JOB_CLOUDSYNC"] = "0"
    ctl.env["CLOUDPODS_CLOUDSYNC_LIST_THREADS"] = str(threads)
    ctl.serve()
    print(f"-- listing threads: {threads}")
    try:
        env = {**ctl.env, "CLOUDPODS_CLOUD_SECRET": "testing"}
        r = ctl.climc("cloud-account-create-aws", "bench", "--access-key", "testing", "--access-url", url,
                      "--region", "us-east-1", "--no-sync", env=env)
        assert r.returncode == 0, r.stderr
        for run in ("first", "second"):
            t = time.monotonic()
            r = ctl.climc("cloud-account-sync", "bench", "--wait", "--timeout", "600", timeout=700)
            wall = time.monotonic() - t
            assert r.returncode == 0, r.stderr
            rep = json.loads(ctl.climc("cloud-account-show", "bench", "-o", "json").stdout)["sync_report"]
            kinds = rep["kinds"]
            print(f"{run} sync: {rep['seconds']:.2f} s in the controller, {wall:.2f} s for climc --wait; "
                  f"changed {rep['changed']} row(s); seen servers={kinds['servers']['seen']} "
                  f"disks={kinds['disks']['seen']} secgroups={kinds['secgroups']['seen']} "
                  f"(instance pages: {kinds['servers']['pages']})")
            print("   per kind, seconds in the cloud's API / waited for it / applying here: " + ", ".join(
                f"{k} {v.get('cloud_s', 0):.2f}/{v.get('wait_s', v.get('cloud_s', 0)):.2f}/{v.get('apply_s', 0):.2f}"
                for k, v in kinds.items()))
    finally:
        ctl.stop()


if __name__ == "__main__":
    main()
