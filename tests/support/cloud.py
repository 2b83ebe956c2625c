"""Shared parts of the public-cloud tests (tests/e2e/test_cloud.py on every database and
tests/integration/test_cloud_aws.py): moto's server playing AWS, a controller that syncs only on
demand, and the climc/boto3 helpers both use."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.controller import Controller
from tests.support.moto import Moto, have_moto, moto_server
from tests.support.waiting import wait_for

B = "/api/s/compute_v2"
SECRET = "s3cret-Of-The-Account-9"
ON_DEMAND = {"CLOUDPODS_JOB_CLOUDSYNC": "0"}  # a controller that syncs on demand only: the tests decide when


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    have_moto()
    with moto_server() as m:
        yield m


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory, moto: Moto) -> Iterator[Controller]:
    with Controller.serving(tmp_path_factory.mktemp("cloud"), ON_DEMAND) as c:
        yield c


@pytest.fixture()
def cloud(moto: Moto) -> Iterator[Moto]:
    moto.reset()
    yield moto


def climc_json(ctl: Controller, *args: str) -> Any:
    r = ctl.climc(*args, "-o", "json")
    assert r.returncode == 0, (args, r.stderr)
    return json.loads(r.stdout)


def create_account(ctl: Controller, name: str, url: str, *extra: str, key: str = "testing",
                   secret: str = SECRET) -> Any:
    r = ctl.climc("cloud-account-create-aws", name, "--access-key", key, "--access-url", url, "--region",
                  "us-east-1", "--no-sync", *extra, "-o", "json", env={**ctl.env, "CLOUDPODS_CLOUD_SECRET": secret})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def sync(ctl: Controller, name: str) -> Any:
    r = ctl.climc("cloud-account-sync", name, "--wait", "--timeout", "120")
    return r


def drop_account(ctl: Controller, name: str) -> None:
    assert ctl.climc("cloud-account-disable", name).returncode == 0
    r = ctl.climc("cloud-account-delete", name)
    assert r.returncode == 0, r.stderr


def servers(ctl: Controller, **params: str) -> list[dict[str, Any]]:
    r = ctl.api.get(f"{B}/servers", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["servers"])


def server_status(ctl: Controller, name: str, want: str, timeout: float = 90) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def check() -> bool:
        nonlocal last
        r = ctl.api.get(f"{B}/servers/{name}")
        last = r.json().get("server", {}) if r.status_code == 200 else {"status": str(r.status_code)}
        if want == "gone":
            return r.status_code == 404
        return last.get("status") == want

    wait_for(check, timeout, f"server {name} {want} (last: {last.get('status')} {last.get('status_reason', '')})")
    return last


def instances(ec2: Any, **filters: str) -> list[dict[str, Any]]:
    f = [{"Name": k, "Values": [v]} for k, v in filters.items()]
    return [i for r in ec2.describe_instances(Filters=f)["Reservations"] for i in r["Instances"]]


def base_image(ec2: Any) -> str:
    """An AMI this account owns (what a user uploads): made from moto's stock image."""
    stock = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    iid = ec2.run_instances(ImageId=stock, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ami = ec2.create_image(InstanceId=iid, Name="cp-base")["ImageId"]
    ec2.terminate_instances(InstanceIds=[iid])
    return str(ami)


def subnet_of(ec2: Any, zone: str) -> str:
    subnets = ec2.describe_subnets(Filters=[{"Name": "availability-zone", "Values": [zone]}])["Subnets"]
    return str(subnets[0]["SubnetId"])


def eip_row(ctl: Controller, name: str, *, busy_ok: bool = False) -> dict[str, Any]:
    """The eip once no task acts on it (its status no longer ends in "ing")."""
    last: dict[str, Any] = {}

    def settled() -> bool:
        nonlocal last
        r = ctl.api.get(f"{B}/eips/{name}")
        last = r.json().get("eip", {}) if r.status_code == 200 else {"status": str(r.status_code)}
        return not str(last.get("status", "")).endswith("ing")

    wait_for(settled, 90, f"eip {name} settled (last: {last.get('status')})")
    return last


def addresses(ec2: Any, **filters: str) -> list[dict[str, Any]]:
    return list(ec2.describe_addresses(Filters=[{"Name": k, "Values": [v]} for k, v in filters.items()])["Addresses"])
