"""What an AWS account has, page by page, as drivers.base value objects (the sync's side).

Listings walk the account's regions (``options.regions``; every enabled region when empty); a
page token is ``<region index>:<AWS NextToken>``. Statuses go through the maps below; a status
not in a map is "unknown" (``map_status``).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from drivers.aws.session import AwsAccount, call
from drivers.base import (
    CloudDisk,
    CloudEip,
    CloudImage,
    CloudInstance,
    CloudNetwork,
    CloudRegion,
    CloudSecgroup,
    CloudSecgroupRule,
    CloudStatus,
    CloudVpc,
    CloudZone,
    GuestStatus,
    InvalidSpec,
    Page,
    ProviderCapability,
    ProviderError,
    map_status,
)

PAGE_SIZE = 500
SERVER_TAG = "cloudpods:server-id"  # set on instances a server-create made: links them back
DISK_TAG = "cloudpods:disk-id"  # set on volumes a server-attach-disk made for a disk
SECGROUP_TAG = "cloudpods:secgroup-id"  # on the EC2 copy of a security group here (pushed by compute.py)
EIP_TAG = "cloudpods:eip-id"  # set on addresses an eip-create allocated: a retried allocate finds it

INSTANCE_STATUS: dict[str, GuestStatus] = {
    # AWS boots a pending instance without anyone acting: it is on its way to running
    "pending": GuestStatus.RUNNING,
    "running": GuestStatus.RUNNING,
    "stopping": GuestStatus.SHUTTING_DOWN,
    "shutting-down": GuestStatus.SHUTTING_DOWN,
    "stopped": GuestStatus.STOPPED,
}
VOLUME_STATUS: dict[str, CloudStatus] = {
    "creating": CloudStatus.CREATING, "available": CloudStatus.AVAILABLE, "in-use": CloudStatus.IN_USE,
    "deleting": CloudStatus.DELETING, "error": CloudStatus.ERROR,
}
IMAGE_STATUS: dict[str, CloudStatus] = {
    "available": CloudStatus.AVAILABLE, "pending": CloudStatus.CREATING, "failed": CloudStatus.ERROR,
    "invalid": CloudStatus.ERROR, "deregistered": CloudStatus.DELETING,
}
SUBNET_STATUS: dict[str, CloudStatus] = {"available": CloudStatus.AVAILABLE, "pending": CloudStatus.CREATING}
# vCPUs and MiB of the common instance types (the rest: 0, the cloud still has them)
INSTANCE_TYPES: dict[str, tuple[int, int]] = {
    "t2.nano": (1, 512), "t2.micro": (1, 1024), "t2.small": (1, 2048), "t2.medium": (2, 4096),
    "t2.large": (2, 8192), "t3.nano": (2, 512), "t3.micro": (2, 1024), "t3.small": (2, 2048),
    "t3.medium": (2, 4096), "t3.large": (2, 8192), "t3.xlarge": (4, 16384), "t3.2xlarge": (8, 32768),
    "m5.large": (2, 8192), "m5.xlarge": (4, 16384), "m5.2xlarge": (8, 32768), "m5.4xlarge": (16, 65536),
    "c5.large": (2, 4096), "c5.xlarge": (4, 8192), "c5.2xlarge": (8, 16384), "r5.large": (2, 16384),
}
CAPABILITIES = frozenset({ProviderCapability.SYNC, ProviderCapability.COMPUTE, ProviderCapability.EIP,
                          ProviderCapability.SECGROUP_PUSH, ProviderCapability.PARALLEL_LISTING})


def tags_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return {str(t.get("Key")): str(t.get("Value") or "") for t in obj.get("Tags") or []}


def name_of(obj: Mapping[str, Any], fallback: str) -> str:
    return (tags_of(obj).get("Name") or "").replace("/", "-")[:255] or fallback


def subnet_range(cidr: str) -> tuple[str, str, str]:
    """Addresses a guest may get in an AWS subnet: AWS keeps the first four and the last."""
    net = ipaddress.ip_network(cidr, strict=False)
    if net.num_addresses < 8:
        raise InvalidSpec(f"subnet {cidr} is too small")
    return str(net.network_address + 4), str(net.broadcast_address - 1), str(net.network_address + 1)


class AwsProvider:
    name = "aws"
    capabilities = CAPABILITIES

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.acct = AwsAccount(config)
        self._regions: tuple[str, ...] | None = None
        self._enabled: tuple[str, ...] | None = None

    # ---- the protocol ----------------------------------------------------------------------------
    def validate(self) -> dict[str, Any]:
        names = self._all_regions()
        missing = [r for r in self.acct.regions if r not in names]
        if missing:
            raise InvalidSpec(f"aws: no region {', '.join(missing)} (the account has {', '.join(names[:8])}...)")
        return {"regions": len(names)}

    def _all_regions(self) -> tuple[str, ...]:
        if self._enabled is None:  # asked once per provider: validate and the listing share it
            out = call("DescribeRegions", self.acct.ec2().describe_regions)
            self._enabled = tuple(sorted(str(r["RegionName"]) for r in out.get("Regions", [])))
        return self._enabled

    def close(self) -> None:
        self.acct.close()

    def regions(self) -> tuple[str, ...]:
        if self._regions is None:
            self._regions = self.acct.regions or self._all_regions()
        return self._regions

    # ---- ProviderCapability.PARALLEL_LISTING: each region a partition, listed side by side -----------
    def partitions(self, kind: str) -> tuple[str, ...]:
        return ("",) if kind == "cloudregions" else self.regions()

    def fetch_partition_page(self, kind: str, partition: str, page_token: str = "") -> Page:
        if kind == "cloudregions":
            return self.fetch_page(kind)
        fn = getattr(self, f"_page_{kind}", None)
        if fn is None:
            return Page(())
        items, nxt = fn(partition, page_token)
        return Page(tuple(items), nxt)

    def fetch_page(self, kind: str, page_token: str = "") -> Page:
        fn = getattr(self, f"_page_{kind}", None)
        if fn is None:
            return Page(())
        if kind == "cloudregions":
            return Page(tuple(CloudRegion(external_id=r, name=r) for r in self.regions()))
        idx_s, _, native = page_token.partition(":")
        idx = int(idx_s) if idx_s.isdigit() else 0
        regions = self.regions()
        if idx >= len(regions):
            return Page(())
        items, nxt = fn(regions[idx], native)
        if nxt:
            return Page(tuple(items), f"{idx}:{nxt}")
        return Page(tuple(items), f"{idx + 1}:" if idx + 1 < len(regions) else "")

    # ---- per kind: (items, AWS NextToken) ----------------------------------------------------------
    def _paged(self, region: str, op: str, key: str, token: str, **kw: Any) -> tuple[list[Any], str]:
        ec2 = self.acct.ec2(region)
        size = self.acct.options.get("page_size") or PAGE_SIZE
        args: dict[str, Any] = {**kw, "MaxResults": max(5, min(1000, int(size)))}
        if token:
            args["NextToken"] = token
        out = call(op, getattr(ec2, _snake(op)), **args)
        return list(out.get(key) or []), str(out.get("NextToken") or "")

    def _page_cloudregions(self, region: str, token: str) -> tuple[list[Any], str]:  # handled in fetch_page
        return [], ""

    def _page_zones(self, region: str, token: str) -> tuple[list[Any], str]:
        out = call("DescribeAvailabilityZones", self.acct.ec2(region).describe_availability_zones)
        return [CloudZone(external_id=z["ZoneName"], name=z["ZoneName"], region_id=region,
                          status=CloudStatus.AVAILABLE if z.get("State") == "available" else CloudStatus.UNKNOWN,
                          extra={"zone_id": z.get("ZoneId", "")}) for z in out.get("AvailabilityZones", [])], ""

    def _page_vpcs(self, region: str, token: str) -> tuple[list[Any], str]:
        raw, nxt = self._paged(region, "DescribeVpcs", "Vpcs", token)
        return [CloudVpc(external_id=v["VpcId"], name=name_of(v, v["VpcId"]), region_id=region,
                         cidr_block=v.get("CidrBlock", ""), is_default=bool(v.get("IsDefault")),
                         status=map_status({"available": CloudStatus.AVAILABLE, "pending": CloudStatus.CREATING},
                                           v.get("State"), CloudStatus.UNKNOWN)) for v in raw], nxt

    def _page_networks(self, region: str, token: str) -> tuple[list[Any], str]:
        raw, nxt = self._paged(region, "DescribeSubnets", "Subnets", token)
        items = []
        for n in raw:
            start, end, gw = subnet_range(n["CidrBlock"])
            items.append(CloudNetwork(external_id=n["SubnetId"], name=name_of(n, n["SubnetId"]), vpc_id=n["VpcId"],
                                      zone_id=n["AvailabilityZone"], cidr=n["CidrBlock"], ip_start=start, ip_end=end,
                                      gateway=gw, status=map_status(SUBNET_STATUS, n.get("State"), CloudStatus.UNKNOWN),
                                      extra={"default_for_az": bool(n.get("DefaultForAz"))}))
        return items, nxt

    def _page_secgroups(self, region: str, token: str) -> tuple[list[Any], str]:
        raw, nxt = self._paged(region, "DescribeSecurityGroups", "SecurityGroups", token)
        out = []
        for g in raw:
            rules = [r for p in g.get("IpPermissions") or [] for r in _rules("in", p)]
            rules += [r for p in g.get("IpPermissionsEgress") or [] for r in _rules("out", p)]
            out.append(CloudSecgroup(external_id=g["GroupId"], name=str(g.get("GroupName") or g["GroupId"])[:255],
                                     vpc_id=g.get("VpcId", ""), description=g.get("Description", ""),
                                     rules=tuple(rules), secgroup_id=tags_of(g).get(SECGROUP_TAG, "")))
        return out, nxt

    def _page_cachedimages(self, region: str, token: str) -> tuple[list[Any], str]:
        owners = self.acct.options.get("image_owners") or ["self"]
        out = call("DescribeImages", self.acct.ec2(region).describe_images, Owners=list(owners))
        return [CloudImage(external_id=i["ImageId"], name=str(i.get("Name") or i["ImageId"]).replace("/", "-")[:255],
                           size_mb=sum(int((b.get("Ebs") or {}).get("VolumeSize") or 0)
                                       for b in i.get("BlockDeviceMappings") or []) * 1024,
                           os_type="Windows" if i.get("Platform") == "windows" else "Linux",
                           status=map_status(IMAGE_STATUS, i.get("State"), CloudStatus.UNKNOWN),
                           is_public=bool(i.get("Public")), extra={"region": region})
                for i in out.get("Images", [])], ""

    def _page_servers(self, region: str, token: str) -> tuple[list[Any], str]:
        raw, nxt = self._paged(region, "DescribeInstances", "Reservations", token)
        return [instance_of(i) for r in raw for i in r.get("Instances") or []
                if (i.get("State") or {}).get("Name") != "terminated"], nxt

    def _page_disks(self, region: str, token: str) -> tuple[list[Any], str]:
        raw, nxt = self._paged(region, "DescribeVolumes", "Volumes", token)
        out = []
        for v in raw:
            att = (v.get("Attachments") or [{}])[0] if v.get("Attachments") else {}
            dev = str(att.get("Device") or "")
            out.append(CloudDisk(external_id=v["VolumeId"], name=name_of(v, v["VolumeId"]),
                                 zone_id=v.get("AvailabilityZone", ""), size_mb=int(v.get("Size") or 0) * 1024,
                                 status=map_status(VOLUME_STATUS, v.get("State"), CloudStatus.UNKNOWN),
                                 disk_type="sys" if dev in ("/dev/sda1", "/dev/xvda") else "data",
                                 storage_type=str(v.get("VolumeType") or ""),
                                 instance_id=str(att.get("InstanceId") or ""),
                                 device=dev, disk_id=tags_of(v).get(DISK_TAG, "")))
        return out, nxt

    def _page_eips(self, region: str, token: str) -> tuple[list[Any], str]:
        out = call("DescribeAddresses", self.acct.ec2(region).describe_addresses)
        return [eip_of(a, region) for a in out.get("Addresses", [])], ""

    # ---- elastic IPs (ProviderCapability.EIP) ------------------------------------------------------
    def _address(self, region: str, **filters: str) -> dict[str, Any] | None:
        f = [{"Name": k, "Values": [v]} for k, v in filters.items()]
        found = call("DescribeAddresses", self.acct.ec2(region).describe_addresses, Filters=f).get("Addresses") or []
        return dict(found[0]) if found else None

    def allocate_eip(self, region: str, name: str, eip_id: str, bandwidth: int = 0) -> CloudEip:
        """A VPC Elastic IP tagged with the row's id (a retried allocate returns the same one)."""
        a = self._address(region, **{f"tag:{EIP_TAG}": eip_id})
        if a is None:
            out = call("AllocateAddress", self.acct.ec2(region).allocate_address, Domain="vpc",
                       TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": [
                           {"Key": "Name", "Value": name}, {"Key": EIP_TAG, "Value": eip_id}]}])
            a = self._address(region, **{"allocation-id": str(out["AllocationId"])}) or dict(out)
        return eip_of(a, region)

    def associate_eip(self, region: str, eip_external_id: str, instance_external_id: str) -> CloudEip:
        a = self._address(region, **{"allocation-id": eip_external_id})
        if a is None:
            raise ProviderError(f"aws: no elastic IP {eip_external_id} in {region}")
        if a.get("InstanceId") != instance_external_id:  # a retried associate: done already
            call("AssociateAddress", self.acct.ec2(region).associate_address, AllocationId=eip_external_id,
                 InstanceId=instance_external_id, AllowReassociation=False)
            a = self._address(region, **{"allocation-id": eip_external_id}) or a
        return eip_of(a, region)

    def dissociate_eip(self, region: str, eip_external_id: str) -> None:
        a = self._address(region, **{"allocation-id": eip_external_id})
        if a is not None and a.get("AssociationId"):
            call("DisassociateAddress", self.acct.ec2(region).disassociate_address, AssociationId=a["AssociationId"])

    def release_eip(self, region: str, eip_external_id: str) -> bool:
        """False when the cloud has no such address (released already)."""
        if self._address(region, **{"allocation-id": eip_external_id}) is None:
            return False
        call("ReleaseAddress", self.acct.ec2(region).release_address, AllocationId=eip_external_id)
        return True


def eip_of(a: Mapping[str, Any], region: str) -> CloudEip:
    ip = str(a.get("PublicIp") or "")
    return CloudEip(external_id=str(a.get("AllocationId") or ip), name=name_of(a, ip), ip_addr=ip, region_id=region,
                    instance_id=str(a.get("InstanceId") or ""), eip_id=tags_of(a).get(EIP_TAG, ""),
                    status=CloudStatus.IN_USE if a.get("InstanceId") else CloudStatus.AVAILABLE)


def instance_of(i: Mapping[str, Any]) -> CloudInstance:
    itype = str(i.get("InstanceType") or "")
    vcpu, mem = INSTANCE_TYPES.get(itype, (0, 0))
    ips = tuple((str(n.get("SubnetId") or ""), str(a.get("PrivateIpAddress")))
                for n in i.get("NetworkInterfaces") or [] for a in n.get("PrivateIpAddresses") or []
                if a.get("PrivateIpAddress"))
    if not ips and i.get("PrivateIpAddress"):
        ips = ((str(i.get("SubnetId") or ""), str(i["PrivateIpAddress"])),)
    return CloudInstance(
        external_id=i["InstanceId"], name=name_of(i, i["InstanceId"]),
        zone_id=str((i.get("Placement") or {}).get("AvailabilityZone") or ""),
        status=map_status(INSTANCE_STATUS, (i.get("State") or {}).get("Name"), GuestStatus.UNKNOWN),
        vcpu=vcpu, memory_mb=mem, instance_type=itype, image_id=str(i.get("ImageId") or ""), private_ips=ips,
        public_ip=str(i.get("PublicIpAddress") or ""),
        secgroup_ids=tuple(str(g.get("GroupId")) for g in i.get("SecurityGroups") or []),
        server_id=tags_of(i).get(SERVER_TAG, ""), os_type="Windows" if i.get("Platform") == "windows" else "Linux",
        extra={"state": (i.get("State") or {}).get("Name", ""), "key_name": i.get("KeyName", "")})


def _rules(direction: str, p: Mapping[str, Any]) -> list[CloudSecgroupRule]:
    proto = str(p.get("IpProtocol") or "-1")
    proto = {"-1": "any", "6": "tcp", "17": "udp", "1": "icmp"}.get(proto, proto)
    lo, hi = p.get("FromPort"), p.get("ToPort")
    ports = "" if proto in ("any", "icmp") or lo in (None, -1) else (str(lo) if lo == hi else f"{lo}-{hi}")
    cidrs = [str(r.get("CidrIp")) for r in p.get("IpRanges") or []] or [""]
    return [CloudSecgroupRule(direction=direction, protocol=proto, ports=ports, cidr=c) for c in cidrs]


def _snake(op: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in op).lstrip("_")
