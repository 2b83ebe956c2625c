"""Server create: validate the request, pick names, reserve quota, insert rows, queue the task.

All of it runs in the API's transaction; the reply only waits for that commit (the rest is the
``ServerBatchCreateTask``), which is what keeps "create accepted" fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.db.base import new_uuid
from core.db.engine import plain_rows
from core.errors import DuplicateNameError, InputParameterError
from core.region import ipam, quotas
from core.region import statemachine as sm
from core.region.common import check_name, parse
from core.region.images import check_image
from core.region.models import Disk, Server
from core.region.passwords import login_spec, sealed_password
from core.region.secgroups import default_secgroup_id, join_new_servers, secgroup_refs
from core.region.sizes import MAX_DISKS, MAX_NICS, to_mb
from core.tasks.engine import submit

MAX_VCPU = 512
MAX_VMEM_MB = 4 * 1024 * 1024  # 4 TB
MAX_DISK_MB = 64 * 1024 * 1024  # 64 TB
DEFAULT_SYS_DISK_MB = 10 * 1024
DISK_FORMATS = ("qcow2", "raw", "vmdk")


class DiskIn(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    index: int | None = Field(default=None, ge=0, le=63)
    image_id: str | None = Field(default=None, validation_alias=AliasChoices("image_id", "image"))
    size: int | str | None = None
    disk_type: str | None = None
    storage_id: str | None = Field(default=None, validation_alias=AliasChoices("storage_id", "storage"))
    backend: str | None = Field(default=None, validation_alias=AliasChoices("backend", "storage_type"))
    medium: str | None = None
    format: str = "qcow2"

    @field_validator("size", mode="before")
    @classmethod
    def _autoextend(cls, v: Any) -> Any:
        # Cloudpods' autoextend: size -1 (or "autoextend") means "as large as the image needs"
        return None if v in (-1, "-1") or (isinstance(v, str) and v.strip().lower() == "autoextend") else v


class NetIn(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    network: str | None = Field(default=None, validation_alias=AliasChoices("network", "network_id"))
    address: str | None = None
    mac: str | None = None


class ServerCreate(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str | None = None
    generate_name: str | None = None
    description: str = ""
    vcpu_count: int = Field(default=1)
    vmem_size: int | str = 1024
    disks: list[DiskIn | str] = Field(default_factory=list, max_length=MAX_DISKS)
    nets: list[NetIn | str] = Field(default_factory=list, max_length=MAX_NICS,
                                    validation_alias=AliasChoices("nets", "networks"))
    prefer_zone: str | None = Field(default=None, validation_alias=AliasChoices("prefer_zone", "prefer_zone_id",
                                                                                 "zone", "zone_id"))
    prefer_host: str | None = Field(default=None, validation_alias=AliasChoices("prefer_host", "prefer_host_id",
                                                                                 "host", "host_id"))
    # a cloud by region or cloudprovider (Cloudpods' prefer_region_id / prefer_manager_id; climc --region/--manager)
    prefer_region: str | None = Field(default=None, validation_alias=AliasChoices("prefer_region",
                                                                                   "prefer_region_id"))
    prefer_manager: str | None = Field(default=None, validation_alias=AliasChoices("prefer_manager",
                                                                                    "prefer_manager_id"))
    hypervisor: str = "kvm"
    os_type: str = ""
    os_arch: str | None = None
    keypair: str | None = Field(default=None, validation_alias=AliasChoices("keypair", "keypair_id"))
    password: str | None = None
    secgroups: list[str] | str | None = Field(default=None, validation_alias=AliasChoices("secgroups", "secgroup"))
    user_data: str = Field(default="", max_length=64 * 1024)
    auto_start: bool = False
    src_ip_check: bool = True
    src_mac_check: bool = True
    schedtags: list[dict[str, Any]] = Field(default_factory=list, max_length=64)
    instance_snapshot: str | None = Field(default=None, validation_alias=AliasChoices("instance_snapshot",
                                                                                     "instance_snapshot_id"))
    # an ISO image in the CD-ROM drive, booted first (an installer onto a blank system disk)
    cdrom: str | None = Field(default=None, validation_alias=AliasChoices("cdrom", "iso"))
    # Cloudpods' EIP at create: an existing one (eip), or a new one of eip_bw Mbps (core/region/eips.py)
    eip: str | None = Field(default=None, validation_alias=AliasChoices("eip", "eip_id"))
    eip_bw: int = 0
    eip_charge_type: str | None = None
    eip_auto_dellocate: bool = False

    @field_validator("schedtags")
    @classmethod
    def _schedtags(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # checked here, not first in the scheduling task (a non-string id was a sched_fail later)
        from core.scheduler.request import SchedtagConfig

        return [SchedtagConfig.model_validate(t).model_dump() for t in v]

    @field_validator("vcpu_count", mode="before")
    @classmethod
    def _vcpu(cls, v: Any) -> Any:
        if isinstance(v, bool) or (isinstance(v, int) and not 1 <= v <= MAX_VCPU):
            raise ValueError(f"must be between 1 and {MAX_VCPU}")
        return v


def disk_from_str(s: str) -> DiskIn:
    """``IMAGE[:size]`` or ``size`` (climc's --disk form)."""
    head, _, size = s.partition(":")
    if size.strip().lower() in ("-1", "autoextend"):
        size = ""
    try:
        to_mb(head, "disk")
        return DiskIn(size=head)
    except InputParameterError:
        return DiskIn(image_id=head, size=size or None)


def _net_from_str(s: str) -> NetIn:
    net, _, addr = s.partition(":")
    return NetIn(network=net, address=addr or None)


_NAMES_TAKEN = select(Server.tenant_id, Server.name).where(Server.name.in_(bindparam("names", expanding=True)))


def pick_names(session: Session, tenant_id: str, data: ServerCreate, count: int) -> list[str]:
    def taken(names: list[str]) -> set[str]:
        # found by name, the project compared here: given both, SQLite searched the project's index and
        # read every server the project owns (10,000 rows per create at 10k servers)
        return {n for t, n in plain_rows(session, _NAMES_TAKEN, {"names": names}) if t == tenant_id}

    if data.generate_name:
        base = check_name(data.generate_name, "generate_name")
        out: list[str] = []
        n = 0
        while len(out) < count:
            want = [(base if n + i == 0 else f"{base}-{n + i}") for i in range(count - len(out) + 8)]
            n += len(want)
            used = taken(want)
            out += [w for w in want if w not in used][: count - len(out)]
        return [check_name(x) for x in out]
    if not data.name:
        raise InputParameterError("name: required (or give generate_name)")
    base = check_name(data.name)
    names = [base] if count == 1 else [f"{base}-{i + 1}" for i in range(count)]
    for n_ in names:
        check_name(n_)
    dup = taken(names)
    if dup:
        raise DuplicateNameError(f"server name {sorted(dup)[0]!r} is already in use (use generate_name)")
    return names


def _from_instance_snapshot(session: Session, cred: Credential, data: ServerCreate,
                            body: dict[str, Any]) -> list[dict[str, Any]]:
    """``instance_snapshot``: the clone's shape (CPU, memory, networks unless given) and its disks,
    each a copy of its disk snapshot, on the host that keeps them (``data`` filled in; the disks)."""
    from core.errors import InvalidStatusError
    from core.region.managers.snapshot_base import members
    from core.region.registry import get_manager

    isnap = get_manager("instance_snapshots").lookup(session, cred, str(data.instance_snapshot), "instance_snapshot")
    if isnap.status != "ready":
        raise InvalidStatusError(f"instance snapshot {isnap.name} is {isnap.status}, not ready")
    if data.disks:
        raise InputParameterError("disks: a server made from an instance snapshot gets its disks from it "
                                  "(drop --disk)")
    cfg = dict(isnap.server_config or {})
    snaps = {s.disk_id: s for s in members(session, isnap.id) if s.status == "ready"}
    cfg_disks = list(cfg.get("disks") or [])
    if not cfg_disks or any(d.get("disk_id") not in snaps for d in cfg_disks):
        raise InvalidStatusError(f"instance snapshot {isnap.name} lacks some of its disk snapshots")
    host_id = cfg.get("host_id")
    if data.prefer_host:
        want = get_manager("hosts").lookup(session, cred, data.prefer_host, "host").id
        if want != host_id:
            raise InputParameterError("prefer_host: a clone is made on the host that keeps the instance "
                                      "snapshot's disks (drop --host)")
    data.prefer_host = host_id
    if "vcpu_count" not in body:
        data.vcpu_count = int(cfg.get("vcpu_count") or data.vcpu_count)
    if "vmem_size" not in body:
        data.vmem_size = int(cfg.get("vmem_size") or data.vmem_size)
    if not data.nets:
        data.nets = [NetIn(network=n["network"]) for n in cfg.get("nets") or []]
    data.os_type = data.os_type or str(cfg.get("os_type") or "")
    data.os_arch = data.os_arch or (str(cfg.get("os_arch") or "") or None)
    return [{"index": d["index"], "size": d["size"], "image_id": d.get("image_id"), "format": d.get("format", "qcow2"),
             "storage_id": d.get("storage_id"), "disk_type": d.get("disk_type") or "data", "backend": None,
             "medium": None, "os_type": cfg.get("os_type") or "", "snapshot_id": snaps[d["disk_id"]].id}
            for d in cfg_disks]


def _cloud_choice(session: Session, cred: Credential, data: ServerCreate, body: dict[str, Any]) -> dict[str, Any]:
    """The scheduler's cloud fields: ``prefer_region``/``prefer_manager`` as ids, and the
    cloudproviders this project may be placed on (``usable_managers``: never another project's
    cloud account, named or not). With a cloud region or provider named and no ``hypervisor``
    given, the hypervisor is that cloud's driver (``--manager my-aws`` is enough, as in Cloudpods)."""
    from sqlalchemy import or_

    from core.region.cloud.accounts import cloud_region, provider_row
    from core.region.models import Cloudaccount, Cloudregion
    from core.region.scheduling import usable_managers

    usable = usable_managers(session, cred)
    prov = provider_row(session, cred, data.prefer_manager) if data.prefer_manager else None
    manager_id, region_id = (prov.id if prov else None), None
    if data.prefer_region:
        ref = data.prefer_region
        # a region of this cloud (no cloudprovider) unless a cloudprovider is named
        local = None if prov else session.scalar(select(Cloudregion.id).where(
            Cloudregion.manager_id.is_(None), or_(Cloudregion.id == ref, Cloudregion.name == ref)).limit(1))
        if local:
            region_id = local
        else:
            prov, region = cloud_region(session, cred, ref, prov)
            manager_id, region_id = prov.id, region.id
    if prov is not None and "hypervisor" not in body:
        acct = session.get(Cloudaccount, prov.cloudaccount_id)
        if acct is not None and acct.driver:
            data.hypervisor = acct.driver
    return {"prefer_region": region_id, "prefer_manager": manager_id, "usable_managers": usable}


@dataclass
class CreatePlan:
    """A validated create request: everything resolved to ids, nothing written yet."""

    data: ServerCreate
    vmem: int
    disks: list[dict[str, Any]]
    nets: list[dict[str, Any]]
    keypair_id: str | None
    secgroup_ids: list[str]
    sched: dict[str, Any]
    cdrom: dict[str, Any] | None = None
    eip: dict[str, Any] | None = None  # core.region.eips.plan_create_eip


def plan_servers(session: Session, cred: Credential, body: dict[str, Any], count: int) -> CreatePlan:
    """Validate a create body and resolve every reference (images, networks, hosts...) to ids."""
    from core.region.registry import get_manager

    data = parse(ServerCreate, body)
    clone = _from_instance_snapshot(session, cred, data, body) if data.instance_snapshot else None
    if data.password:  # "" means no password, as Cloudpods' clients send it
        from core.keystone.passwords import check_password_policy

        check_password_policy(data.password, "server password")
    if not cred.project_id:
        raise InputParameterError("servers are created in a project: use a project-scoped token")
    vmem = to_mb(data.vmem_size, "vmem_size")
    if vmem > MAX_VMEM_MB:
        raise InputParameterError(f"vmem_size: {vmem} MB is more than {MAX_VMEM_MB} MB")
    cloud = _cloud_choice(session, cred, data, body)
    if data.hypervisor not in ("kvm", "baremetal", "esxi", "container", "aws", "cloudpods"):
        raise InputParameterError(f"hypervisor: {data.hypervisor!r} is not supported")
    if data.hypervisor == "baremetal" and not any(
            (disk_from_str(d) if isinstance(d, str) else d).image_id for d in data.disks[:1]):
        raise InputParameterError("disks: a bare-metal server is deployed from an image: give --image (or "
                                  "--disk IMAGE as its first disk)")
    # disks: the first is the system disk (from an image), the others data disks
    disks: list[dict[str, Any]] = list(clone or [])
    for i, raw in enumerate(data.disks):
        d = disk_from_str(raw) if isinstance(raw, str) else raw
        if d.format not in DISK_FORMATS:
            raise InputParameterError(f"disks.{i}.format: must be one of {', '.join(DISK_FORMATS)}")
        img = check_image(session, d.image_id, cred) if d.image_id else None
        if d.size is not None:
            size = to_mb(d.size, f"disks.{i}.size")
        elif img is not None:
            size = max(img.min_disk_mb, img.size_mb, DEFAULT_SYS_DISK_MB)
        else:
            raise InputParameterError(f"disks.{i}.size: required for a data disk")
        if img is not None and img.min_disk_mb and size < img.min_disk_mb:
            raise InputParameterError(f"disks.{i}.size: image {img.name} needs at least {img.min_disk_mb} MB")
        if size > MAX_DISK_MB:
            raise InputParameterError(f"disks.{i}.size: {size} MB is more than {MAX_DISK_MB} MB")
        storage_id = None
        if d.storage_id:
            storage_id = get_manager("storages").lookup(session, cred, d.storage_id, "storage").id
        disks.append({"index": d.index if d.index is not None else i, "size": size,
                      "image_id": img.id if img else None, "format": d.format, "storage_id": storage_id,
                      "disk_type": d.disk_type or ("sys" if i == 0 else "data"), "backend": d.backend,
                      "medium": d.medium, "os_type": img.os_type if img else ""})
    nets: list[dict[str, Any]] = []
    for i, rawn in enumerate(data.nets):
        n = _net_from_str(rawn) if isinstance(rawn, str) else rawn
        if not n.network:
            raise InputParameterError(f"nets.{i}.network: required")
        net = get_manager("networks").lookup(session, cred, n.network, "network")
        if net.server_type != "guest":
            raise InputParameterError(f"network {net.name} is for {net.server_type}, not guests")
        if n.address:
            a = ipam.ip_int(n.address, f"nets.{i}.address")
            if not net.ip_start_int <= a <= net.ip_end_int:
                raise InputParameterError(f"nets.{i}.address {n.address} is outside network {net.name}")
            if count > 1:
                raise InputParameterError(f"nets.{i}.address: a fixed address cannot be given with count > 1")
        nets.append({"index": i, "network": net.id, "address": n.address, "mac": n.mac, "wire": net.wire_id})
    zone = host = None
    if data.prefer_zone:
        zone = get_manager("zones").lookup(session, cred, data.prefer_zone, "zone")
    if data.prefer_host:
        host = get_manager("hosts").lookup(session, cred, data.prefer_host, "host")
    keypair_id = get_manager("keypairs").lookup(session, cred, data.keypair, "keypair").id if data.keypair else None
    sgs = [data.secgroups] if isinstance(data.secgroups, str) else (data.secgroups or [])
    secgroup_ids = secgroup_refs(session, cred, sgs, "secgroups")
    # a bare-metal server takes its whole machine: the scheduler sees each machine as one slot
    whole = data.hypervisor == "baremetal"
    sched = {"vcpu_count": 1 if whole else data.vcpu_count, "vmem_size": 1 if whole else vmem,
             "hypervisor": data.hypervisor,
             "os_arch": data.os_arch, "prefer_zone": zone.id if zone else None, **cloud,
             "prefer_host": host.id if host else None, "schedtags": data.schedtags,
             "disks": [{"index": d["index"], "size": d["size"], "storage_id": d["storage_id"],
                        "storage_type": d["backend"], "medium": d["medium"], "image_id": d["image_id"]}
                       for d in disks],
             "networks": [{"index": n["index"], "network": n["network"]} for n in nets]}
    cdrom = None
    if data.cdrom:
        from core.region.cdrom import iso_image

        if data.hypervisor != "kvm":
            raise InputParameterError(f"cdrom: a {data.hypervisor} server has no ISO drive here (kvm only)")
        cdrom = iso_image(session, cred, data.cdrom, "cdrom")
    from core.region.eips import plan_create_eip

    eip = plan_create_eip(session, cred, data, count)
    return CreatePlan(data, vmem, disks, nets, keypair_id, secgroup_ids, sched, cdrom, eip)


def create_servers(manager: Any, session: Session, cred: Credential, body: dict[str, Any], count: int) -> list[Any]:
    plan = plan_servers(session, cred, body, count)
    data, disks, nets = plan.data, plan.disks, plan.nets
    assert cred.project_id
    names = pick_names(session, cred.project_id, data, count)
    if data.hypervisor == "kvm" and not disks:
        # a guest with nothing to boot from: refused here rather than deployed as an empty shell
        raise InputParameterError("disks: a kvm server needs a system disk: give an image (--disk IMAGE[:size]) "
                                  "or a size (--disk 10g)")
    storage_total = sum(d["size"] for d in disks)
    per_server = {"cpu": data.vcpu_count, "memory": plan.vmem, "storage": storage_total, "servers": 1,
                  "ips": len(nets)}
    if plan.eip and "bw" in plan.eip:
        per_server["eip"] = 1  # the EIP the create task makes: held by the server until then
    tenant, domain = cred.project_id, cred.project_domain_id or "default"
    os_type = data.os_type or (disks[0]["os_type"] if disks else "")
    spec: dict[str, Any] = {"disks": disks, "nets": [dict(n) for n in nets], "secgroups": plan.secgroup_ids}
    if plan.cdrom:  # the installer boots first; the system disk after it (once the ISO is ejected)
        spec.update(cdrom=plan.cdrom, boot_order=["cdrom", f"disk{disks[0]['index']}"])
    if plan.eip and "bw" in plan.eip:
        spec["eip"] = plan.eip  # allocated by the create task once the host (its zone) is known
    # no group asked for: the project's Default (made on first use), as Cloudpods does
    sg_ids = plan.secgroup_ids or [default_secgroup_id(session, tenant, domain)]
    sealed = sealed_password(data.password)
    spec.update(login_spec(sealed))
    # every row is built complete (ids made here, the task's id in it) and flushed once, by the caller
    ids = [new_uuid() for _ in names]
    params = {"server_ids": ids, "sched": plan.sched, **sealed}
    task = submit(session, "ServerBatchCreateTask", "server", ids[0], names[0], params, cred=cred)
    rows = []
    for sid, name in zip(ids, names, strict=True):
        # server-tasks of every server of the batch lists the batch task (its scheduling verdict)
        s = Server(id=sid, name=name, description=data.description, status="init", vcpu_count=data.vcpu_count,
                   vmem_size=plan.vmem, hypervisor=data.hypervisor, os_type=os_type, os_arch=data.os_arch or "",
                   tenant_id=tenant, domain_id=domain, keypair_id=plan.keypair_id,
                   auto_start=data.auto_start, src_ip_check=data.src_ip_check, src_mac_check=data.src_mac_check,
                   user_data=data.user_data, create_spec={**spec, "create_task_id": task.id},
                   held={"quota": per_server}, active_task_id=task.id)
        sm.apply(s, "schedule")
        rows.append(s)
    session.add_all(rows)
    join_new_servers(session, rows, sg_ids)
    from core.region.eips import take_eip

    for r in rows:
        take_eip(session, plan.eip, r)
        manager.audit(session, cred, "create", r)
    # The quota last, after the rows are written: its conditional UPDATE locks the project's quota row
    # until the commit, and every create of the project queues on that row (PostgreSQL/MariaDB). Taken
    # first, the row stayed locked through the whole create, so a burst of 200 creates was accepted one
    # at a time (issue 22). Over quota, the transaction rolls back with everything written before it.
    session.flush()
    quotas.reserve(session, tenant, domain, **{k: v * count for k, v in per_server.items()})
    return rows


def forecast_servers(session: Session, cred: Credential, body: dict[str, Any]) -> dict[str, Any]:
    """Dry run of a create: the scheduler's forecast for exactly what ``POST /servers`` would ask.

    Body as for create (``{"server": {...}, "count": N}`` or bare). Nothing is written or claimed.
    """
    from core.region.scheduling import CACHE
    from core.scheduler.errors import ScheduleInputError
    from core.scheduler.request import ScheduleInput

    inner = body["server"] if isinstance(body.get("server"), dict) else body
    raw_count = body.get("count", inner.get("count", 1))
    if isinstance(raw_count, bool) or not isinstance(raw_count, int | str) or not str(raw_count).isdigit() \
            or not 1 <= int(raw_count) <= 1000:
        raise InputParameterError("count: must be an integer between 1 and 1000")
    count = int(raw_count)
    plan = plan_servers(session, cred, {k: v for k, v in inner.items() if k != "count"}, count)
    try:
        req = ScheduleInput.model_validate({**plan.sched, "count": count})
    except (ScheduleInputError, ValueError) as e:
        raise InputParameterError(f"scheduling input rejected: {e}") from None
    result = CACHE.forecast(session, req)
    out = result.to_forecast()
    out["explanation"] = result.explanation()
    return out


def disk_rows_for(server: Server, placement_disks: list[dict[str, Any]]) -> list[Disk]:
    """Disk rows of a placed server (one per requested disk, on the storage the scheduler chose)."""
    by_index = {d["index"]: d for d in server.create_spec.get("disks", [])}
    out = []
    for p in placement_disks:
        want = by_index.get(p["index"], {})
        out.append(Disk(name=f"{server.name}-disk{p['index']}"[:255], disk_size=p["size"],
                        disk_format=want.get("format", "qcow2"), disk_type=want.get("disk_type", "data"),
                        storage_id=p["storage_id"], template_id=want.get("image_id") or "", server_id=server.id,
                        disk_index=p["index"], status="init", tenant_id=server.tenant_id,
                        domain_id=server.domain_id,
                        held={"storage": {"storage_id": p["storage_id"], "size": p["size"]}}))
    return out
