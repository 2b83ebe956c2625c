"""AWS instances of one availability zone as a hosted driver: the executor runs the host
contract's work items (deploy, start, stop, restart, delete, status) on it.

A server is found by the tag ``cloudpods:server-id`` (instances a server-create made) or, for
instances the sync imported, by the server id the sync gave them: uuid5 of the cloudprovider and
the instance id (drivers.base ``imported_server_id``), so nothing is kept on the controller's disk.
"""
from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

from drivers.aws.provider import DISK_TAG, INSTANCE_TYPES, SECGROUP_TAG, SERVER_TAG, instance_of
from drivers.aws.session import AwsAccount, call
from drivers.base import (
    Capability,
    CloudZoneGuests,
    CloudZoneHosted,
    Deployed,
    Guest,
    GuestNotFound,
    GuestStatus,
    HostEnv,
    HostFacts,
    HypervisorError,
    InstanceDisk,
    InstanceSpec,
    InvalidSpec,
    SecgroupSpec,
    imported_server_id,
    not_supported,
)

VERSION = "1"
CAPABILITIES = frozenset({Capability.GRACEFUL_STOP, Capability.REBOOT, Capability.ATTACH_DISK,
                          Capability.ATTACH_DISK_HOT})
DEVICES = "fghijklmnop"  # /dev/sdf.. for data disks, by the disk's index
WAIT_S = 300.0


def pick_instance_type(vcpu: int, memory_mb: int) -> str:
    """The smallest known type with at least the asked vCPUs and memory (a tie: the first listed,
    the general-purpose families come first)."""
    fits = [(m, c, i, t) for i, (t, (c, m)) in enumerate(INSTANCE_TYPES.items()) if c >= vcpu and m >= memory_mb]
    if not fits:
        raise InvalidSpec(f"aws: no instance type with {vcpu} vCPU and {memory_mb} MB")
    return min(fits)[3]


class AwsInstances(CloudZoneGuests):
    """The zone's instances as a HypervisorDriver (what the contract's handlers call)."""

    name = "aws"
    capabilities = CAPABILITIES

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.acct = AwsAccount(config)
        self.region = str(config.get("region") or self.acct.default_region)
        self.zone = str(config.get("zone") or "")
        self.manager_id = str(config.get("manager_id") or "")
        self.ec2 = self.acct.ec2(self.region)

    # ---- finding a server's instance -----------------------------------------------------------
    def _describe(self, **kw: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token = ""
        while True:
            args = dict(kw)
            if token:
                args["NextToken"] = token
            page = call("DescribeInstances", self.ec2.describe_instances, **args)
            out += [i for r in page.get("Reservations") or [] for i in r.get("Instances") or []
                    if (i.get("State") or {}).get("Name") != "terminated"]
            token = str(page.get("NextToken") or "")
            if not token:
                return out

    def find(self, guest_id: str) -> dict[str, Any]:
        if guest_id.startswith("i-"):
            found = self._describe(Filters=[{"Name": "instance-id", "Values": [guest_id]}])
        else:
            found = self._describe(Filters=[{"Name": f"tag:{SERVER_TAG}", "Values": [guest_id]}])
            if not found and self.manager_id:
                filters = [{"Name": "availability-zone", "Values": [self.zone]}] if self.zone else []
                found = [i for i in self._describe(Filters=filters) if
                         imported_server_id(self.manager_id, i["InstanceId"]) == guest_id]
        if not found:
            raise GuestNotFound(guest_id)
        return found[0]

    def get_guest(self, guest_id: str) -> Guest:
        ci = instance_of(self.find(guest_id))
        return Guest(id=ci.external_id, name=ci.name, status=ci.status,
                     extra={"state": ci.extra.get("state", ""), "instance_type": ci.instance_type})

    def list_guests(self) -> list[Guest]:
        filters = [{"Name": "availability-zone", "Values": [self.zone]}] if self.zone else []
        return [Guest(id=c.external_id, name=c.name, status=c.status)
                for c in (instance_of(i) for i in self._describe(Filters=filters))]

    def _wait(self, iid: str, want: set[str]) -> str:
        end = time.monotonic() + WAIT_S
        state = ""
        while time.monotonic() < end:
            found = self._describe(Filters=[{"Name": "instance-id", "Values": [iid]}])
            state = (found[0].get("State") or {}).get("Name", "") if found else "terminated"
            if state in want:
                return str(state)
            time.sleep(1.0)
        raise HypervisorError(f"aws: instance {iid} is still {state} after {WAIT_S:.0f} s")

    # ---- power ---------------------------------------------------------------------------------
    def start_guest(self, guest_id: str) -> None:
        iid = self.find(guest_id)["InstanceId"]
        call("StartInstances", self.ec2.start_instances, InstanceIds=[iid])
        self._wait(iid, {"running"})

    def stop_guest(self, guest_id: str, *, timeout: float = 60.0) -> None:
        iid = self.find(guest_id)["InstanceId"]
        call("StopInstances", self.ec2.stop_instances, InstanceIds=[iid], Force=timeout <= 0)
        self._wait(iid, {"stopped"})

    def reboot_guest(self, guest_id: str) -> None:
        iid = self.find(guest_id)["InstanceId"]
        call("RebootInstances", self.ec2.reboot_instances, InstanceIds=[iid])

    def delete_guest(self, guest_id: str) -> None:
        iid = self.find(guest_id)["InstanceId"]
        call("TerminateInstances", self.ec2.terminate_instances, InstanceIds=[iid])
        self._wait(iid, {"terminated"})

    def host_facts(self) -> HostFacts:
        return self.zone_facts(self.zone or self.region, VERSION)

    def close(self) -> None:
        self.acct.close()


class AwsHosted(CloudZoneHosted):
    """The HostedDriver the executor builds for an AWS zone host."""

    name = "aws"
    version = VERSION
    capabilities = CAPABILITIES

    def __init__(self, env: HostEnv) -> None:
        self.env = env
        self.driver: AwsInstances = AwsInstances(env.options)

    def validate(self) -> None:
        call("DescribeAvailabilityZones", self.driver.ec2.describe_availability_zones,
             ZoneNames=[self.driver.zone] if self.driver.zone else [])

    def _subnet_for(self, ip: str, vpc_id: str) -> str:
        import ipaddress

        filters = [{"Name": "availability-zone", "Values": [self.driver.zone]}]
        if vpc_id.startswith("vpc-"):
            filters.append({"Name": "vpc-id", "Values": [vpc_id]})
        subnets = call("DescribeSubnets", self.driver.ec2.describe_subnets, Filters=filters).get("Subnets") or []
        for s in subnets:
            if ipaddress.ip_address(ip) in ipaddress.ip_network(s["CidrBlock"]):
                return str(s["SubnetId"])
        raise InvalidSpec(f"aws: no subnet of zone {self.driver.zone} holds {ip}")

    def _key_name(self, public_key: str) -> str:
        name = "cloudpods-" + hashlib.sha256(public_key.strip().encode()).hexdigest()[:16]
        have = call("DescribeKeyPairs", self.driver.ec2.describe_key_pairs,
                    Filters=[{"Name": "key-name", "Values": [name]}]).get("KeyPairs") or []
        if not have:
            call("ImportKeyPair", self.driver.ec2.import_key_pair, KeyName=name,
                 PublicKeyMaterial=public_key.strip().encode())
        return name

    def deploy(self, spec: InstanceSpec) -> Deployed:
        try:  # a redelivered item: the instance exists already
            found = self.driver.find(spec.server_id)
            return Deployed(guest_id=found["InstanceId"], status=instance_of(found).status)
        except GuestNotFound:
            pass
        if not spec.disks or not spec.disks[0].image_id:
            raise InvalidSpec("aws: the system disk needs an image (an AMI: --disk <cachedimage>)")
        if not spec.nics:
            raise InvalidSpec("aws: a server needs a network (a synced subnet)")
        nic = spec.nics[0]
        args: dict[str, Any] = {
            "ImageId": spec.disks[0].image_id, "MinCount": 1, "MaxCount": 1,
            "InstanceType": pick_instance_type(spec.vcpu, spec.memory_mb),
            "SubnetId": self._subnet_for(nic.ip, nic.bridge), "PrivateIpAddress": nic.ip,
            "Placement": {"AvailabilityZone": self.driver.zone},
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [
                {"Key": "Name", "Value": spec.name}, {"Key": SERVER_TAG, "Value": spec.server_id}]}],
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {
                "VolumeSize": max(1, (spec.disks[0].size_mb + 1023) // 1024), "DeleteOnTermination": True}}],
        }
        if spec.ssh_keys:
            args["KeyName"] = self._key_name(spec.ssh_keys[0])
        if spec.user_data:
            args["UserData"] = base64.b64encode(spec.user_data.encode()).decode()
        out = call("RunInstances", self.driver.ec2.run_instances, **args)
        iid = str(out["Instances"][0]["InstanceId"])
        self.driver._wait(iid, {"running"})
        if not spec.auto_start:  # AWS starts what it creates; the server asked to stay stopped
            call("StopInstances", self.driver.ec2.stop_instances, InstanceIds=[iid])
            self.driver._wait(iid, {"stopped"})
        return Deployed(guest_id=iid, status=GuestStatus.RUNNING if spec.auto_start else GuestStatus.STOPPED)

    def _volume(self, disk: InstanceDisk, instance_id: str) -> dict[str, Any] | None:
        """The disk's EBS volume: the one tagged with its id, else the one at its device."""
        ec2 = self.driver.ec2
        vols = call("DescribeVolumes", ec2.describe_volumes,
                    Filters=[{"Name": f"tag:{DISK_TAG}", "Values": [disk.id]}]).get("Volumes") or []
        if not vols and disk.access_path.startswith("/dev/"):
            vols = call("DescribeVolumes", ec2.describe_volumes, Filters=[
                {"Name": "attachment.instance-id", "Values": [instance_id]},
                {"Name": "attachment.device", "Values": [disk.access_path]}]).get("Volumes") or []
        return dict(vols[0]) if vols else None

    def _wait_volume(self, vid: str, want: str) -> None:
        end = time.monotonic() + WAIT_S
        state = ""
        while time.monotonic() < end:
            vols = call("DescribeVolumes", self.driver.ec2.describe_volumes, VolumeIds=[vid]).get("Volumes") or []
            state = str(vols[0].get("State")) if vols else "gone"
            if state == want:
                return
            time.sleep(0.5)
        raise HypervisorError(f"aws: volume {vid} is still {state} after {WAIT_S:.0f} s")

    def attach_disk(self, server_id: str, disk: InstanceDisk) -> tuple[str, bool]:
        """Attach the disk's volume (made in the instance's zone if it has none yet)."""
        inst = self.driver.find(server_id)
        iid = str(inst["InstanceId"])
        running = (inst.get("State") or {}).get("Name") == "running"
        vol = self._volume(disk, iid)
        if vol is None:
            vol = call("CreateVolume", self.driver.ec2.create_volume, Size=max(1, (disk.size_mb + 1023) // 1024),
                       AvailabilityZone=self.driver.zone, VolumeType="gp3", TagSpecifications=[{
                           "ResourceType": "volume", "Tags": [{"Key": DISK_TAG, "Value": disk.id}]}])
            self._wait_volume(str(vol["VolumeId"]), "available")
        for att in vol.get("Attachments") or []:
            if att.get("InstanceId") == iid:  # redelivered: attached already
                return str(att.get("Device") or ""), running
        device = f"/dev/sd{DEVICES[min(max(disk.index - 1, 0), len(DEVICES) - 1)]}"
        call("AttachVolume", self.driver.ec2.attach_volume, VolumeId=vol["VolumeId"], InstanceId=iid, Device=device)
        self._wait_volume(str(vol["VolumeId"]), "in-use")
        return device, running

    def detach_disk(self, server_id: str, disk: InstanceDisk, *, keep: bool = True) -> bool:
        inst = self.driver.find(server_id)
        iid = str(inst["InstanceId"])
        running = (inst.get("State") or {}).get("Name") == "running"
        vol = self._volume(disk, iid)
        if vol is None:
            return running  # gone already (redelivered)
        vid = str(vol["VolumeId"])
        if any(a.get("InstanceId") == iid for a in vol.get("Attachments") or []):
            call("DetachVolume", self.driver.ec2.detach_volume, VolumeId=vid, InstanceId=iid)
            self._wait_volume(vid, "available")
        if not keep:
            call("DeleteVolume", self.driver.ec2.delete_volume, VolumeId=vid)
        return running

    def rebuild_root(self, spec: InstanceSpec) -> Deployed:
        not_supported(self.name, "rebuild_root")

    def delete_disk(self, disk: InstanceDisk) -> bool:
        """A deleted disk's volume goes with it (drivers.base DiskFiles); one still attached is refused."""
        vols = call("DescribeVolumes", self.driver.ec2.describe_volumes,
                    Filters=[{"Name": f"tag:{DISK_TAG}", "Values": [disk.id]}]).get("Volumes") or []
        if not vols:
            return False
        if vols[0].get("Attachments"):
            raise HypervisorError(f"aws: volume {vols[0]['VolumeId']} of disk {disk.id} is attached: detach it first")
        call("DeleteVolume", self.driver.ec2.delete_volume, VolumeId=vols[0]["VolumeId"])
        return True

    # ---- security groups (drivers.base SecgroupPushing) -----------------------------------------
    def push_secgroups(self, groups: Sequence[SecgroupSpec], servers: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
        """Each group becomes an EC2 security group in the VPC of its servers' instances (named
        ``cloudpods-<id>``, tagged with the id), with its allow rules (EC2 groups allow only: a deny
        rule is not pushed); each instance is put in its server's groups. The servers whose
        instance does not exist (yet) are returned."""
        # one listing of the zone (not one call per server): by our tag, else by the imported server id
        filters = [{"Name": "availability-zone", "Values": [self.driver.zone]}] if self.driver.zone else []
        by_id: dict[str, dict[str, Any]] = {}
        for i in self.driver._describe(Filters=filters):
            tag = next((str(t.get("Value")) for t in i.get("Tags") or [] if t.get("Key") == SERVER_TAG), "")
            by_id[tag or imported_server_id(self.driver.manager_id, i["InstanceId"])] = i
        wanted = [sid for sid in servers if servers[sid]]  # in no group here: it keeps what it has
        insts = {sid: by_id[sid] for sid in wanted if sid in by_id}
        missing = [sid for sid in wanted if sid not in by_id]
        for vpc in sorted({str(i.get("VpcId") or "") for i in insts.values()} - {""}):
            ext = self._ensure_groups(vpc, [g for g in groups if not g.external_id])
            ext.update({g.id: g.external_id for g in groups if g.external_id})
            for g in groups:
                if not g.external_id:  # the cloud's own groups keep their rules (they change there)
                    self._set_rules(ext[g.id], g, ext)
            for sid, inst in insts.items():
                if inst.get("VpcId") != vpc:
                    continue
                want = [ext[gid] for gid in servers[sid] if gid in ext]
                have = [str(g.get("GroupId")) for g in inst.get("SecurityGroups") or []]
                if sorted(have) != sorted(want):
                    call("ModifyInstanceAttribute", self.driver.ec2.modify_instance_attribute,
                         InstanceId=inst["InstanceId"], Groups=want)
        return tuple(missing)

    def _ensure_groups(self, vpc: str, groups: Sequence[SecgroupSpec]) -> dict[str, str]:
        ec2 = self.driver.ec2
        have = call("DescribeSecurityGroups", ec2.describe_security_groups, Filters=[
            {"Name": "vpc-id", "Values": [vpc]}, {"Name": "tag-key", "Values": [SECGROUP_TAG]}]).get("SecurityGroups")
        ext = {tags.get(SECGROUP_TAG, ""): str(g["GroupId"]) for g in have or []
               for tags in [{t["Key"]: t.get("Value", "") for t in g.get("Tags") or []}]}
        for g in groups:
            if g.id in ext:
                continue
            out = call("CreateSecurityGroup", ec2.create_security_group, GroupName=f"cloudpods-{g.id}",
                       Description=f"cloudpods security group {g.id}", VpcId=vpc, TagSpecifications=[{
                           "ResourceType": "security-group", "Tags": [
                               {"Key": "Name", "Value": g.name}, {"Key": SECGROUP_TAG, "Value": g.id}]}])
            ext[g.id] = str(out["GroupId"])
        return ext

    def _set_rules(self, sg: str, g: SecgroupSpec, ext: Mapping[str, str]) -> None:
        """Revoke what the group has and the spec has not; authorize what it lacks (no gap for the rest)."""
        ec2 = self.driver.ec2
        cur = (call("DescribeSecurityGroups", ec2.describe_security_groups, GroupIds=[sg]).get("SecurityGroups")
               or [{}])[0]
        for direction, key, revoke, grant in (
                ("in", "IpPermissions", ec2.revoke_security_group_ingress, ec2.authorize_security_group_ingress),
                ("out", "IpPermissionsEgress", ec2.revoke_security_group_egress, ec2.authorize_security_group_egress)):
            want = {p for r in g.rules if r.direction == direction and r.action == "allow" for p in _perms(r, ext)}
            have = {p for perm in cur.get(key) or [] for p in _flat(perm)}
            if have - want:
                call("RevokeSecurityGroup", revoke, GroupId=sg, IpPermissions=[_perm(p) for p in sorted(have - want)])
            if want - have:
                call("AuthorizeSecurityGroup", grant, GroupId=sg, IpPermissions=[_perm(p) for p in sorted(want - have)])



# one EC2 permission, flat: (protocol, from, to, "cidr" | "group", value); "-1" protocols have no ports
Perm = tuple[str, int, int, str, str]


def _perms(r: Any, ext: Mapping[str, str]) -> list[Perm]:
    proto = {"any": "-1", "tcp": "tcp", "udp": "udp", "icmp": "icmp"}.get(r.protocol, r.protocol)
    if r.peer:
        if r.peer not in ext:
            return []
        where = [("group", ext[r.peer])]
    else:
        where = [("cidr", r.cidr or "0.0.0.0/0")]
    if proto in ("-1", "icmp"):
        ranges = [(-1, -1)]
    elif not r.ports:
        ranges = [(0, 65535)]
    else:
        ranges = [(int(lo), int(hi or lo)) for lo, _, hi in (p.partition("-") for p in r.ports.split(","))]
    return [(proto, lo, hi, kind, val) for lo, hi in ranges for kind, val in where]


def _flat(perm: Mapping[str, Any]) -> list[Perm]:
    proto = str(perm.get("IpProtocol") or "-1")
    lo, hi = (-1, -1) if proto in ("-1", "icmp") else (int(perm.get("FromPort", 0)), int(perm.get("ToPort", 65535)))
    out: list[Perm] = [(proto, lo, hi, "cidr", str(c.get("CidrIp"))) for c in perm.get("IpRanges") or []]
    out += [(proto, lo, hi, "group", str(p.get("GroupId"))) for p in perm.get("UserIdGroupPairs") or []]
    return out


def _perm(p: Perm) -> dict[str, Any]:
    proto, lo, hi, kind, val = p
    out: dict[str, Any] = {"IpProtocol": proto}
    if proto != "-1":
        out["FromPort"], out["ToPort"] = lo, hi
    if kind == "cidr":
        out["IpRanges"] = [{"CidrIp": val}]
    else:
        out["UserIdGroupPairs"] = [{"GroupId": val}]
    return out
