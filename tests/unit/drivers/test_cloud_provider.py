"""The cloud provider protocol's pieces: status maps with an explicit unknown, AWS's mapping of
what EC2 answers, and the stable ids of imported servers."""
from __future__ import annotations

import pytest

from drivers.base import CloudStatus, GuestStatus, imported_server_id, map_status


def test_an_unmapped_status_is_unknown_never_an_error() -> None:
    m = {"available": CloudStatus.AVAILABLE}
    assert map_status(m, "Available", CloudStatus.UNKNOWN) is CloudStatus.AVAILABLE
    assert map_status(m, "melting", CloudStatus.UNKNOWN) is CloudStatus.UNKNOWN
    assert map_status(m, None, CloudStatus.UNKNOWN) is CloudStatus.UNKNOWN


def test_imported_server_ids_are_stable_and_per_provider() -> None:
    a = imported_server_id("prov-1", "i-0abc")
    assert a == imported_server_id("prov-1", "i-0abc") != imported_server_id("prov-2", "i-0abc")
    assert len(a) == 36


def test_aws_instances_map_to_the_contract_vocabulary() -> None:
    pytest.importorskip("boto3")
    from drivers.aws.provider import instance_of, subnet_range

    inst = {"InstanceId": "i-1", "State": {"Name": "stopped"}, "InstanceType": "t3.small",
            "Placement": {"AvailabilityZone": "us-east-1a"}, "SubnetId": "subnet-1", "PrivateIpAddress": "10.0.0.5",
            "Tags": [{"Key": "Name", "Value": "web/1"}, {"Key": "cloudpods:server-id", "Value": "sid"}]}
    ci = instance_of(inst)
    assert (ci.status, ci.vcpu, ci.memory_mb, ci.name, ci.server_id) == (GuestStatus.STOPPED, 2, 2048, "web-1", "sid")
    assert ci.private_ips == (("subnet-1", "10.0.0.5"),)
    assert instance_of({**inst, "State": {"Name": "rebooting-sideways"}}).status is GuestStatus.UNKNOWN
    assert subnet_range("10.0.1.0/24") == ("10.0.1.4", "10.0.1.254", "10.0.1.1")


def test_aws_picks_the_smallest_instance_type_that_fits() -> None:
    pytest.importorskip("boto3")
    from drivers.aws.compute import pick_instance_type
    from drivers.base import InvalidSpec

    assert pick_instance_type(1, 1024) == "t2.micro"
    assert pick_instance_type(4, 8000) == "c5.xlarge"
    assert pick_instance_type(2, 4096) == "t2.medium"
    with pytest.raises(InvalidSpec):
        pick_instance_type(512, 1024)
