"""Hosts: registration by agents, ping/online/offline, enable/disable, capacity, joints."""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.api.listing import ListQuery
from core.db.base import utcnow
from core.errors import ConflictError, InputParameterError, InvalidStatusError, NotEmptyError
from core.keystone.policy import allowed, enforce
from core.region.common import check_name, parse, text_field
from core.region.hosted import build, decrypt_config, encrypt_config, masked, register_remote, runtime
from core.region.managers._util import add_names, apply_update, names_by_id, unique_name
from core.region.managers.storages import free_capacity
from core.region.models import Host, HostStorage, HostWire, Server, Storage, Wire, Zone
from core.region.resource import Joint, Manager
from core.scheduler.capacity import offered

HOST_TYPES = ("hypervisor", "baremetal", "esxi", "container")


class StorageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    storage_type: str = "local"
    medium_type: str = "ssd"
    capacity: int = Field(ge=0)
    mount_point: str = ""


class WireIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    wire: str
    bridge: str = ""
    interface: str = ""
    mac: str = ""


class HostRegister(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    description: str = ""
    host_type: str = "hypervisor"
    access_ip: str = ""
    access_mac: str = ""
    cpu_arch: str = "x86_64"
    cpu_count: int = Field(default=0, ge=0, le=65536)
    cpu_reserved: int = Field(default=0, ge=0)
    cpu_cmtbound: float = Field(default=8.0, gt=0, le=1000)
    mem_size: int = Field(default=0, ge=0)
    mem_reserved: int = Field(default=0, ge=0)
    mem_cmtbound: float = Field(default=1.0, gt=0, le=1000)
    storage_size: int = Field(default=0, ge=0)
    sys_info: dict[str, Any] = Field(default_factory=dict)
    version: str = ""
    driver: str = Field(default="kvm", pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    driver_version: str = Field(default="", max_length=64)
    capabilities: list[str] = Field(default_factory=list, max_length=64)
    enabled: bool | None = None
    storages: list[StorageIn] = Field(default_factory=list)
    wires: list[WireIn] = Field(default_factory=list)


class ExecutorHostIn(BaseModel):
    """A host whose work items the controller's executor runs (core/hostapi/executor.py; its driver:
    core/region/hosted.py)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    zone: str | None = None
    zone_id: str | None = None
    target: Literal["executor"]
    host_type: str = "hypervisor"
    driver: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    driver_config: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=64)
    cpu_cmtbound: float = Field(default=8.0, gt=0, le=1000)
    mem_cmtbound: float = Field(default=1.0, gt=0, le=1000)
    enabled: bool = True
    storages: list[StorageIn] = Field(default_factory=list)
    wires: list[WireIn] = Field(default_factory=list)
    # a bare-metal machine's PXE NIC (Cloudpods' access_mac): deploys boot through it
    access_mac: str = Field(default="", pattern=r"^$|^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$")


DEFAULT_EXECUTOR_STORAGE_MB = 1024 * 1024  # a storage for a host created without --storage

# Cloudpods' way to register a machine by its BMC: POST /hosts {"host_type": "baremetal", "ipmi_ip": ...}
BMC_KEYS = ("ipmi_ip", "ipmi_port", "ipmi_username", "ipmi_password", "redfish_url", "redfish_system",
            "verify_tls", "timeout_s", "retries", "protocol", "deploy_timeout_s")


BMC_STATUS_KEYS = ("ipmi_status", "power_status", "health", "ipmi_reason")  # what sys_info.bmc records


def bmc_fields(sys_info: dict[str, Any] | None) -> dict[str, Any]:
    """What a host shows of its BMC (from ``sys_info.bmc``, core/region/host_bmc.py); {} for a host without one."""
    bmc = (sys_info or {}).get("bmc")
    return {k: bmc.get(k, "") for k in (*BMC_STATUS_KEYS, "checked_at")} if isinstance(bmc, dict) else {}


def baremetal_body(body: dict[str, Any]) -> dict[str, Any] | None:
    """A baremetal host given by its BMC → the executor host (driver ``baremetal``) it is; None if not one."""
    if body.get("host_type") != "baremetal" or not any(k in body for k in ("ipmi_ip", "redfish_url")):
        return None
    out = {k: v for k, v in body.items() if k not in BMC_KEYS}
    out.update(target="executor", driver=body.get("driver") or "baremetal",
               driver_config={k: body[k] for k in BMC_KEYS if body.get(k) not in (None, "")})
    return out


class HostManager(Manager):
    keyword, plural, model = "host", "hosts", Host
    contexts: ClassVar[dict[str, str]] = {"zones": "zone_id"}
    actions: ClassVar[dict[str, str]] = {
        "ping": "do_ping", "enable": "do_enable", "disable": "do_disable", "online": "do_online",
        "offline": "do_offline", "maintenance": "do_maintenance", "unmaintenance": "do_unmaintenance",
    }
    # a cloud zone's host: whether the scheduler places there is decided here
    cloud_ops: ClassVar[frozenset[str] | None] = frozenset({"enable", "disable", "maintenance", "unmaintenance"})
    specs: ClassVar[dict[str, str]] = {"spec": "spec_capacity", "capacity": "spec_capacity"}

    @property
    def joints(self) -> dict[str, Joint]:  # type: ignore[override]
        return {"storages": Joint("hoststorages", attach_storage, detach_storage, show_storage),
                "wires": Joint("hostwires", attach_wire, detach_wire, show_wire)}

    def visible(self, stmt: Select[Any], cred: Credential, scope: str | None = None) -> Select[Any]:
        """Executor hosts (and their driver config) are for cloud admins only: others never see them."""
        if allowed(cred, "compute:hosts:executor"):
            return stmt
        return stmt.where(Host.target != "executor")

    def base_dict(self, row: Any) -> dict[str, Any]:
        out = super().base_dict(row)
        out.update(bmc_fields(row.sys_info))  # ipmi_status, power_status, health of a machine behind a BMC
        blob = out.pop("driver_config", "")
        if blob:  # never the stored secret: the keys, with secret-looking values hidden
            try:
                out["driver_config"] = masked(decrypt_config(blob))
            except Exception as exc:  # no executor here, or its key is gone: say so, show nothing
                out["driver_config"] = {"error": getattr(exc, "details", None) or type(exc).__name__}
        return out

    def list_filter(self, session: Session, cred: Credential, stmt: Any, q: ListQuery) -> Any:
        """``?storage=`` / ``?wire=``: hosts attached to them (Cloudpods' host list filters)."""
        for key, joint, col in (("storage", HostStorage, "storage_id"), ("wire", HostWire, "wire_id")):
            ids = self.ref_values(session, cred, q, key, col)
            if ids:
                stmt = stmt.where(Host.id.in_(select(joint.host_id).where(getattr(joint, col).in_(ids))))
        return stmt

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        """Register (or re-register) a host: the same access_mac/name updates the row.

        ``target: executor`` creates a host the controller's executor runs instead (``create_executor``)."""
        from core.region.registry import get_manager

        if isinstance(body, dict) and (bm := baremetal_body(body)) is not None:
            body = bm
        if isinstance(body, dict) and body.get("target", "agent") != "agent":
            return [self.create_executor(session, cred, body, ctx)]
        data = parse(HostRegister, body)
        check_name(data.name)
        if data.host_type not in HOST_TYPES:
            raise InputParameterError(f"host_type: must be one of {', '.join(HOST_TYPES)}")
        zone_ref = (ctx[1] if ctx else None) or body.get("zone") or body.get("zone_id")
        if not zone_ref:
            raise InputParameterError("zone: required (POST /zones/<zone>/hosts)")
        zone = get_manager("zones").lookup(session, cred, str(zone_ref))
        row = None
        if data.access_mac:
            row = session.scalar(select(Host).where(Host.access_mac == data.access_mac))
        if row is None:
            row = session.scalar(select(Host).where(Host.name == data.name))
        if row is not None and row.target == "executor":
            raise ConflictError(f"host {row.name} is run by the controller's executor: an agent cannot register as it")
        fields = data.model_dump(exclude={"storages", "wires", "enabled"})
        if row is None:
            row = Host(zone_id=zone.id, status="running", host_status="online", last_ping_at=utcnow(),
                       enabled=bool(data.enabled) if data.enabled is not None else True, **fields)
            session.add(row)
            session.flush()
            self.audit(session, cred, "create", row)
        else:
            if row.name != data.name:
                unique_name(session, Host, data.name, exclude_id=row.id)
            for k, v in fields.items():
                setattr(row, k, v)
            row.zone_id, row.host_status, row.last_ping_at, row.status = zone.id, "online", utcnow(), "running"
            if data.enabled is not None:
                row.enabled = data.enabled
            row.generation += 1
            self.audit(session, cred, "register", row)
        attach_joints(session, cred, row, zone, data.storages, data.wires)
        return [row]

    def create_executor(self, session: Session, cred: Credential, body: dict[str, Any],
                        ctx: tuple[str, str] | None) -> Host:
        """A host run by the controller's executor: its driver is built by name and validated now,
        its facts and capabilities recorded like an agent's registration, its config encrypted."""
        from core.db.base import new_uuid
        from core.region.registry import get_manager
        from drivers.base import DriverError

        enforce(cred, "compute:hosts:executor")
        data = parse(ExecutorHostIn, body)
        unique_name(session, Host, data.name)
        if data.host_type not in HOST_TYPES:
            raise InputParameterError(f"host_type: must be one of {', '.join(HOST_TYPES)}")
        zone_ref = (ctx[1] if ctx else None) or data.zone or data.zone_id
        if not zone_ref:
            raise InputParameterError("zone: required")
        zone = get_manager("zones").lookup(session, cred, str(zone_ref))
        rt = runtime()
        host_id = new_uuid()
        config = dict(data.driver_config)
        access_mac = data.access_mac.lower().replace("-", ":")
        if access_mac:  # the machine's PXE NIC: its driver deploys through it
            if session.scalar(select(Host.id).where(Host.access_mac == access_mac)) is not None:
                raise ConflictError(f"access_mac {access_mac}: another host already has this MAC")
            config["access_mac"] = access_mac
        try:
            hosted = build(rt.data_dir, host_id, data.driver, config, rt.drivers.images())
        except DriverError as exc:  # the config itself is wrong: nothing to create
            raise InputParameterError(f"driver {data.driver} does not validate: {exc}") from None
        try:
            reg, problem = register_remote(hosted)
        finally:
            hosted.close()
        row = Host(id=host_id, name=data.name, description=data.description, zone_id=zone.id, host_type=data.host_type,
                   target="executor", access_mac=access_mac, driver_config=encrypt_config(config),
                   status="running",
                   host_status="offline" if problem else "online", last_ping_at=None if problem else utcnow(),
                   enabled=data.enabled, cpu_cmtbound=data.cpu_cmtbound, mem_cmtbound=data.mem_cmtbound, **reg)
        session.add(row)
        session.flush()
        storages = data.storages or [StorageIn(name=f"{data.name}-local", capacity=DEFAULT_EXECUTOR_STORAGE_MB)]
        row.storage_size = sum(st.capacity for st in storages)
        attach_joints(session, cred, row, zone, storages, data.wires)
        self.audit(session, cred, "create", row, notes=f"executor host, driver {row.driver} {row.driver_version}")
        return row

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        if "name" in body:
            unique_name(session, Host, body["name"], exclude_id=row.id)
        for k in ("cpu_cmtbound", "mem_cmtbound"):
            if k in body and (not isinstance(body[k], int | float) or isinstance(body[k], bool) or body[k] <= 0):
                raise InputParameterError(f"{k}: must be a positive number")
        for k in ("cpu_reserved", "mem_reserved"):
            if k in body and (not isinstance(body[k], int) or isinstance(body[k], bool) or body[k] < 0):
                raise InputParameterError(f"{k}: must be a non-negative integer")
        apply_update(row, body, ("name", "description", "cpu_cmtbound", "mem_cmtbound", "cpu_reserved",
                                 "mem_reserved", "access_ip"))
        row.generation += 1
        return row

    def validate_delete(self, session: Session, row: Any) -> None:
        if row.enabled:
            raise InvalidStatusError(f"host {row.name} is enabled: disable it first")
        n = session.scalar(select(func.count()).select_from(Server).where(Server.host_id == row.id)) or 0
        if n:
            raise NotEmptyError(f"host {row.name} still has {n} server(s)")

    def delete(self, session: Session, cred: Credential, row: Any, params: dict[str, str]) -> None:
        from core.region.enroll import unenroll_host

        self.validate_delete(session, row)
        # the host's agent identity goes with it: its service user (audited by keystone) and binding,
        # so the agent's password and tokens fail at once (401), and a re-join needs a new token
        unenroll_host(session, row.id, cred=cred)
        for model in (HostStorage, HostWire):
            for j in session.scalars(select(model).where(model.host_id == row.id)):
                session.delete(j)
        session.flush()
        session.delete(row)
        return None

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        add_names(items, "zone_id", names_by_id(session, Zone, [r.zone_id for r in rows]), "zone")
        ids = [r.id for r in rows]
        guests: dict[str | None, int] = dict(session.execute(select(Server.host_id, func.count())
                                                             .where(Server.host_id.in_(ids))
                                                             .group_by(Server.host_id)).tuples().all())
        for r, it in zip(rows, items, strict=True):
            it["guests"] = int(guests.get(r.id, 0))
            it.update(capacity(r))
            # what the agent last said about enforcing security groups (a test:/// host does not)
            fw = ((r.sys_info or {}).get("usage") or {}).get("firewall")
            if isinstance(fw, dict):
                it["secgroup_enforcing"] = bool(fw.get("enforcing"))
                it["secgroup_status"] = (f"{fw.get('backend')}: v{fw.get('applied_version')}, "
                                         f"{fw.get('enforced_ports')} port(s)" if fw.get("enforcing")
                                         else str(fw.get("reason") or "not enforced"))
                if fw.get("error"):
                    it["secgroup_status"] += f"; last error: {fw['error']}"

    # ---- actions -----------------------------------------------------------------------------
    def do_ping(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> dict[str, Any]:
        was = row.host_status
        row.last_ping_at = utcnow()
        row.host_status = "online"
        if was != "online":
            row.generation += 1
        return {"name": row.name, "host_status": row.host_status, "enabled": row.enabled}

    def do_enable(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        row.enabled = True
        row.generation += 1

    def do_disable(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        row.enabled = False
        row.generation += 1

    def do_online(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        row.host_status, row.last_ping_at = "online", utcnow()
        row.generation += 1

    def do_offline(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        row.host_status = "offline"
        row.generation += 1

    def do_maintenance(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        row.is_maintenance, row.enabled = True, False
        row.generation += 1

    def do_unmaintenance(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        row.is_maintenance, row.enabled = False, True
        row.generation += 1

    def spec_capacity(self, session: Session, cred: Credential, row: Any, q: ListQuery) -> dict[str, Any]:
        storages = session.scalars(select(Storage).join(HostStorage, HostStorage.storage_id == Storage.id)
                                   .where(HostStorage.host_id == row.id))
        return {"spec": {"host_type": row.host_type, "cpu_arch": row.cpu_arch, **capacity(row),
                         "storages": [storage_capacity(s) for s in storages]}}


def attach_joints(session: Session, cred: Credential | None, row: Host, zone: Zone, storages: list[StorageIn],
                  wires: list[WireIn]) -> None:
    """A host's local storages (made if missing) and its wires, as its registration names them."""
    from core.region.registry import get_manager

    for s in storages:
        st = session.scalar(select(Storage).where(Storage.name == s.name))
        if st is None:
            st = Storage(name=check_name(s.name), zone_id=zone.id, storage_type=s.storage_type,
                         medium_type=s.medium_type, capacity=s.capacity, status="online")
            session.add(st)
            session.flush()
        else:
            st.capacity, st.status = s.capacity, "online"
        if session.scalar(select(HostStorage.id).where(HostStorage.host_id == row.id,
                                                       HostStorage.storage_id == st.id)) is None:
            session.add(HostStorage(host_id=row.id, storage_id=st.id, mount_point=s.mount_point))
    for w in wires:
        wire = get_manager("wires").lookup(session, cred, w.wire)
        if session.scalar(select(HostWire.id).where(HostWire.host_id == row.id,
                                                    HostWire.wire_id == wire.id)) is None:
            session.add(HostWire(host_id=row.id, wire_id=wire.id, bridge=w.bridge, interface=w.interface,
                                 mac_addr=w.mac))


def capacity(h: Host) -> dict[str, Any]:
    """Cloudpods' capacity figures: (total - reserved) * cmtbound, and what servers committed."""
    cpu_total = offered(h.cpu_count, h.cpu_reserved, h.cpu_cmtbound)
    mem_total = offered(h.mem_size, h.mem_reserved, h.mem_cmtbound)
    return {"cpu_commit": h.cpu_used, "mem_commit": h.mem_used,
            "cpu_commit_bound": h.cpu_cmtbound, "mem_commit_bound": h.mem_cmtbound,
            "cpu_free": int(cpu_total) - h.cpu_used, "mem_free": int(mem_total) - h.mem_used,
            "cpu_commit_rate": round(h.cpu_used / (h.cpu_count - h.cpu_reserved), 3)
            if h.cpu_count > h.cpu_reserved else 0.0,
            "mem_commit_rate": round(h.mem_used / (h.mem_size - h.mem_reserved), 3)
            if h.mem_size > h.mem_reserved else 0.0}


def storage_capacity(s: Storage) -> dict[str, Any]:
    return {"id": s.id, "name": s.name, "storage_type": s.storage_type, "medium_type": s.medium_type,
            "capacity": s.capacity, "used_capacity": s.used_capacity, "free_capacity": free_capacity(s)}


# ---- joints ------------------------------------------------------------------------------------
def attach_storage(session: Session, cred: Credential, host: Host, st: Storage, body: dict[str, Any]) -> dict[str, Any]:
    j = session.scalar(select(HostStorage).where(HostStorage.host_id == host.id, HostStorage.storage_id == st.id))
    if j is None:
        j = HostStorage(host_id=host.id, storage_id=st.id, mount_point=text_field(body, "mount_point"))
        session.add(j)
        host.generation += 1
        session.flush()
    return {"host_id": host.id, "storage_id": st.id, "mount_point": j.mount_point}


def detach_storage(session: Session, cred: Credential, host: Host, st: Storage) -> None:
    from core.region.models import Disk

    busy = session.scalar(select(Disk.id).join(Server, Server.id == Disk.server_id)
                          .where(Disk.storage_id == st.id, Server.host_id == host.id).limit(1))
    if busy:
        raise NotEmptyError(f"storage {st.name} holds disks of servers on host {host.name}")
    for j in session.scalars(select(HostStorage).where(HostStorage.host_id == host.id,
                                                       HostStorage.storage_id == st.id)):
        session.delete(j)
    host.generation += 1


def show_storage(session: Session, host: Host, st: Storage) -> dict[str, Any] | None:
    j = session.scalar(select(HostStorage).where(HostStorage.host_id == host.id, HostStorage.storage_id == st.id))
    return None if j is None else {"host_id": host.id, "storage_id": st.id, "mount_point": j.mount_point}


def attach_wire(session: Session, cred: Credential, host: Host, wire: Wire, body: dict[str, Any]) -> dict[str, Any]:
    j = session.scalar(select(HostWire).where(HostWire.host_id == host.id, HostWire.wire_id == wire.id))
    if j is None:
        j = HostWire(host_id=host.id, wire_id=wire.id, bridge=text_field(body, "bridge"),
                     interface=text_field(body, "interface"), mac_addr=text_field(body, "mac"))
        session.add(j)
        host.generation += 1
        session.flush()
    return {"host_id": host.id, "wire_id": wire.id, "bridge": j.bridge, "interface": j.interface}


def detach_wire(session: Session, cred: Credential, host: Host, wire: Wire) -> None:
    for j in session.scalars(select(HostWire).where(HostWire.host_id == host.id, HostWire.wire_id == wire.id)):
        session.delete(j)
    host.generation += 1


def show_wire(session: Session, host: Host, wire: Wire) -> dict[str, Any] | None:
    j = session.scalar(select(HostWire).where(HostWire.host_id == host.id, HostWire.wire_id == wire.id))
    return None if j is None else {"host_id": host.id, "wire_id": wire.id, "bridge": j.bridge}
