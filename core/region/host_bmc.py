"""Machines behind a BMC (hosts whose driver declares ``bmc_power`` & co., e.g. ``baremetal``):
power, boot device, sensors, IPMI info, probing. Mounted before the generic resource grammar.

    GET  /hosts/<id>/ipmi            {"ipmi": {ip, port, username, protocol, ipmi_status, power_status, ...}}
    GET  /hosts/<id>/sensors         {"sensors": [{name, value, unit, health}], "health": "ok"}
    POST /hosts/<id>/start|stop|reset            power on / off (hard; "soft": true for ACPI) / reset
    POST /hosts/<id>/set-boot-device {"boot_device": "pxe|disk|cdrom|bios", "persistent": false}
    POST /hosts/<id>/ipmi-probe      read power, health and inventory again → host capacity
    POST /hosts/<id>/prepare         a machine enrolled from a PXE boot gets its BMC (baremetal-prepare)
    PUT  /hosts/<id>                 with ipmi_username / ipmi_password / ipmi_ip_addr (Cloudpods' host-update):
                                     the new BMC config is tried on the BMC first; stored only if it answers

Where the BMC calls run: in the controller that took the request (every replica can reach the
BMC network, like the executor that runs these hosts' other work), OUTSIDE any database
transaction (a BMC call may take seconds; SQLite's single writer must not wait for it), each
bounded by the driver (timeout x retries). The host row records the outcome either way
(``sys_info.bmc``: ipmi_status ok/unreachable/auth_failed/timeout/error, power_status, health,
ipmi_reason) and its ``host_status`` (online while the BMC answers): a failed call leaves a
reason, never a transient status, because none is set before the call.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from core.api.context import Credential
from core.api.deps import CredentialDep, SessionDep
from core.db.base import utcnow
from core.errors import InvalidStatusError, UnsupportedOperationError
from core.region.common import begin_write, iso, json_response, parse
from core.region.hosted import (
    bmc_failure,
    build,
    decrypt_config,
    encrypt_config,
    register_remote,
    registration,
    runtime,
)
from core.region.managers.hosts import bmc_fields
from drivers.base import BmcError, BootDevice, Capability, DriverError, Probing

log = logging.getLogger("cloudpods.bmc")
router = APIRouter()
AnyBody = Body(default=None)
PROBE_WORKERS = 32  # BMCs probed at once by the heartbeat: one slow BMC costs only its own thread


class BootDeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    boot_device: BootDevice
    persistent: bool = False


class StopIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    soft: bool = False
    is_force: bool | None = None


# ---- the host row side ------------------------------------------------------------------------
def record(db: Any, host_id: str, seen: dict[str, Any], *, cred: Credential | None = None, action: str = "",
           extra: dict[str, Any] | None = None, config: Any = None,
           since: datetime | None = None) -> dict[str, Any] | None:
    """Write what a BMC call showed onto the host (and an audit record for an action); the host dict.
    ``config``: the driver config the call used; if the host has another one by now (its BMC settings
    were changed meanwhile, e.g. a rotated password) the outcome is about the old settings and is dropped.
    ``since``: when a mere read (a probe) began; if another outcome was recorded after that, this one may
    be older than it and is dropped: a heartbeat probe that read "on" while a soft power-off was still
    being applied ended after the power-off recorded "off", and the host showed "on" (seen in CI)."""
    from core.region.models import Host
    from core.region.registry import get_manager

    with db.session() as s:
        begin_write(s)
        h = s.get(Host, host_id)
        if h is None:
            return None
        if config is not None and h.driver_config != config:
            return None
        info = dict(h.sys_info or {})
        bmc = dict(info.get("bmc") or {})
        m = get_manager("hosts")
        if since is not None and _recorded_after(bmc.get("checked_at"), since):
            out = m.to_dict(s, h)  # the newer outcome stands
            s.rollback()
            return out  # type: ignore[no-any-return]
        bmc.update(seen)
        bmc["checked_at"] = iso(utcnow())
        info["bmc"] = bmc
        if bmc.get("ipmi_status") == "ok":
            info.pop("executor_error", None)
        else:
            info["executor_error"] = str(bmc.get("ipmi_reason") or "")[:2000]
        info.update(extra or {})
        h.sys_info = info
        status = "online" if bmc.get("ipmi_status") == "ok" else "offline"
        if h.host_status != status:
            h.generation += 1
        h.host_status = status
        if status == "online":
            h.last_ping_at = utcnow()
        if action:
            m.audit(s, cred, action, h, success=bmc.get("ipmi_status") == "ok",
                    notes=str(bmc.get("ipmi_reason") or "")[:500])
        s.flush()
        out = m.to_dict(s, h)
        s.commit()
        return out  # type: ignore[no-any-return]


def _recorded_after(checked_at: Any, since: datetime) -> bool:
    try:
        return isinstance(checked_at, str) and datetime.fromisoformat(checked_at) > since
    except ValueError:  # not a time we wrote: nothing newer is known
        return False


# ---- finding the machine and its driver -------------------------------------------------------------
def _machine(request: Request, cred: Credential, ident: str, cap: Capability, op: str) -> tuple[str, str, Any]:
    """(host id, host name, the host's hosted driver) after RBAC and the capability check."""
    from core.region.registry import get_manager

    m = get_manager("hosts")
    with request.app.state.db.session() as s:
        row = m.fetch(s, cred, ident)
        m.enforce(cred, "perform", row)
        if cap.value not in (row.capabilities or []):
            raise UnsupportedOperationError(f"host {row.name} (driver {row.driver}) cannot {op}: it does not declare "
                                            f"the {cap.value} capability (only hosts with a BMC do)")
        host_id, name, driver, blob = row.id, row.name, row.driver, row.driver_config
        s.rollback()  # no transaction held while the BMC is contacted
    try:
        hosted = runtime().drivers.get(host_id, driver, blob)
    except DriverError as exc:
        raise InvalidStatusError(f"host {name}: its driver does not load: {exc}") from None
    return host_id, name, hosted


def _run(request: Request, cred: Credential, ident: str, cap: Capability, op: str, action: str,
         call: Callable[[Any], dict[str, Any]]) -> Response:
    """Run one BMC operation; record its outcome on the host; the host, or a 400 saying what failed."""
    host_id, name, hosted = _machine(request, cred, ident, cap, op)
    db = request.app.state.db
    try:
        seen = call(hosted)
    except BmcError as exc:
        record(db, host_id, bmc_failure(exc), cred=cred, action=action)
        raise InvalidStatusError(str(exc)) from None
    host = record(db, host_id, {"ipmi_status": "ok", "ipmi_reason": "", **seen}, cred=cred, action=action)
    return json_response({"host": host})


def _power(action: str) -> Callable[[Any], dict[str, Any]]:
    def call(hosted: Any) -> dict[str, Any]:
        return {"power_status": hosted.bmc.set_power_state(action).value}

    return call


@router.post("/hosts/{ident}/start")
def host_start(ident: str, request: Request, cred: CredentialDep, body: Any = AnyBody) -> Response:
    return _run(request, cred, ident, Capability.BMC_POWER, "power on", "start", _power("on"))


@router.post("/hosts/{ident}/stop")
def host_stop(ident: str, request: Request, cred: CredentialDep, body: Any = AnyBody) -> Response:
    data = parse(StopIn, (body or {}).get("host", body) if isinstance(body, dict) else body)
    soft = data.soft and not data.is_force
    return _run(request, cred, ident, Capability.BMC_POWER, "power off", "stop", _power("soft" if soft else "off"))


@router.post("/hosts/{ident}/reset")
def host_reset(ident: str, request: Request, cred: CredentialDep, body: Any = AnyBody) -> Response:
    return _run(request, cred, ident, Capability.BMC_POWER, "reset", "reset", _power("reset"))


@router.post("/hosts/{ident}/set-boot-device")
def host_boot_device(ident: str, request: Request, cred: CredentialDep, body: Any = AnyBody) -> Response:
    data = parse(BootDeviceIn, (body or {}).get("host", body) if isinstance(body, dict) else body)

    def call(hosted: Any) -> dict[str, Any]:
        hosted.bmc.set_boot_device(data.boot_device, persistent=data.persistent)
        return {"boot_device": data.boot_device.value}

    return _run(request, cred, ident, Capability.BOOT_DEVICE, "set its boot device", "set-boot-device", call)


@router.post("/hosts/{ident}/ipmi-probe")
def host_ipmi_probe(ident: str, request: Request, cred: CredentialDep, body: Any = AnyBody) -> Response:
    host_id, name, hosted = _machine(request, cred, ident, Capability.INVENTORY, "read its inventory")
    db = request.app.state.db
    try:
        seen = hosted.probe()
        reg = registration(hosted)
    except BmcError as exc:
        record(db, host_id, bmc_failure(exc), cred=cred, action="ipmi-probe")
        raise InvalidStatusError(str(exc)) from None
    apply_registration(db, host_id, reg)
    return json_response({"host": record(db, host_id, seen, cred=cred, action="ipmi-probe")})


@router.get("/hosts/{ident}/sensors")
def host_sensors(ident: str, request: Request, cred: CredentialDep) -> Response:
    host_id, name, hosted = _machine(request, cred, ident, Capability.SENSORS, "read sensors")
    db = request.app.state.db
    started = utcnow()  # a mere read, like a probe: an outcome recorded while it ran is newer
    try:
        sensors = hosted.bmc.sensors()
    except BmcError as exc:
        record(db, host_id, bmc_failure(exc), since=started)
        raise InvalidStatusError(str(exc)) from None
    order = ["ok", "unknown", "warning", "critical"]
    health = max((x.health for x in sensors), key=order.index, default="ok")
    record(db, host_id, {"ipmi_status": "ok", "ipmi_reason": "", "health": health}, since=started)
    return json_response({"sensors": [{"name": x.name, "value": x.value, "unit": x.unit, "health": x.health,
                                       "states": list(x.states)} for x in sensors], "health": health,
                          "total": len(sensors)})


@router.get("/hosts/{ident}/ipmi")
def host_ipmi(ident: str, request: Request, cred: CredentialDep) -> Response:
    """The BMC's address, user and protocol (never the password), and its power state read now."""
    host_id, name, hosted = _machine(request, cred, ident, Capability.BMC_POWER, "show IPMI info")
    db = request.app.state.db
    started = utcnow()
    try:
        seen = {"ipmi_status": "ok", "ipmi_reason": "", "power_status": hosted.bmc.get_power_state().value}
    except BmcError as exc:
        seen = bmc_failure(exc)
    host = record(db, host_id, seen, since=started) or {}
    info = {**hosted.bmc.info(), **bmc_fields(host.get("sys_info"))}
    return json_response({"ipmi": info})


# ---- registration and the periodic probe --------------------------------------------------------------
def apply_registration(db: Any, host_id: str, reg: dict[str, Any]) -> None:
    from core.region.models import Host

    with db.session() as s:
        begin_write(s)
        h = s.get(Host, host_id)
        if h is None:
            return
        info = dict(h.sys_info or {})
        info.update(reg.pop("sys_info", {}))
        h.sys_info = info
        for k in ("cpu_count", "mem_size", "cpu_arch", "capabilities", "driver_version"):
            if k in reg and (reg[k] or not getattr(h, k)):
                setattr(h, k, reg[k])
        h.generation += 1
        s.commit()


def probe_all(db: Any, targets: list[tuple[str, str, Any]], workers: int = PROBE_WORKERS,
              sink: Callable[[str, dict[str, Any]], Any] | None = None,
              configs: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Probe every (host id, name, hosted driver) at once, each bounded by its own driver: one slow or
    dead BMC costs its own thread, never the others' time. Each outcome is recorded on its host as
    soon as it is known (``sink`` instead, for bench/ipmi.py); {host id: outcome}. ``configs``: the
    driver config each host was probed with; an outcome is dropped if the host's changed meanwhile (a
    probe with the old password that ended after a host-update must not mark the host auth_failed)."""
    def one(t: tuple[str, str, Any]) -> tuple[str, dict[str, Any]]:
        hid, name, hosted = t
        started = utcnow()
        try:
            seen = hosted.probe()
        except BmcError as exc:
            log.warning("host %s: BMC probe failed: %s", name, exc)
            seen = bmc_failure(exc)
        except Exception as exc:
            log.exception("host %s: BMC probe failed", name)
            seen = {"ipmi_status": "error", "ipmi_reason": str(exc)[:1000]}
        if sink is not None:
            sink(hid, seen)
        else:
            record(db, hid, seen, config=(configs or {}).get(hid), since=started)
        return hid, seen

    probing = [t for t in targets if isinstance(t[2], Probing)]
    if not probing:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(probing))), thread_name_prefix="bmc-probe") as pool:
        return dict(pool.map(one, probing))


# ---- discovery: a machine that PXE-boots on the boot network with an unknown MAC ----------------------
PREPARE_REASON = "enrolled from a PXE boot: give its BMC with climc baremetal-prepare"


def enrol_pxe_mac(db: Any, mac: str) -> str | None:
    """Enrol the machine behind ``mac`` as a bare-metal host in ``prepare`` (disabled, no BMC yet: the
    scheduler leaves it alone), unless a host already has that MAC; the new host's id, else None."""
    from sqlalchemy import select

    from core.region.managers.hosts import DEFAULT_EXECUTOR_STORAGE_MB, StorageIn, attach_joints
    from core.region.models import Host, Zone
    from core.region.registry import get_manager

    mac = mac.lower()
    with db.session() as s:
        begin_write(s, background=True)
        if s.scalar(select(Host.id).where(Host.access_mac == mac)) is not None:
            return None
        zone = s.scalar(select(Zone).order_by(Zone.created_at).limit(1))
        if zone is None:
            log.warning("PXE boot from unknown MAC %s: no zone to enrol it in", mac)
            return None
        name = "bm-" + mac.replace(":", "")
        row = Host(name=name, description=f"PXE-booted from {mac}", zone_id=zone.id, host_type="baremetal",
                   target="executor", driver="baremetal", access_mac=mac, status="prepare", host_status="offline",
                   enabled=False, driver_config=encrypt_config({"access_mac": mac}),
                   sys_info={"executor_error": PREPARE_REASON})
        s.add(row)
        s.flush()
        attach_joints(s, None, row, zone, [StorageIn(name=f"{name}-local", capacity=DEFAULT_EXECUTOR_STORAGE_MB)],
                      [])
        get_manager("hosts").audit(s, None, "enrol", row, notes=f"PXE boot from unknown MAC {mac}")
        host_id = str(row.id)
        s.commit()
    log.info("enrolled bare-metal host %s (MAC %s) in prepare", name, mac)
    return host_id


def _machine_config(request: Request, cred: Credential, ident: str, op: str) -> tuple[str, str, dict[str, Any]]:
    """(host id, name, decrypted driver config) of a bare-metal machine ``cred`` may ``op``; no transaction held."""
    from core.region.registry import get_manager

    m = get_manager("hosts")
    with request.app.state.db.session() as s:
        row = m.fetch(s, cred, ident)
        m.enforce(cred, op, row)
        if row.host_type != "baremetal" or row.driver != "baremetal":
            raise UnsupportedOperationError(f"host {row.name} is not a bare-metal machine: it has no BMC")
        out = row.id, row.name, decrypt_config(row.driver_config)
        s.rollback()
    return out


def _merged(config: dict[str, Any], change: Any) -> dict[str, Any]:
    """The machine's driver config with the BMC fields given (an IPMI address replaces a Redfish URL)."""
    out = {**config, **{k: v for k, v in change.model_dump().items() if v not in (None, "")}}
    if change.ipmi_ip and "redfish_url" in out and not change.redfish_url:
        out.pop("redfish_url")
    return out


def _try_bmc(name: str, host_id: str, config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Build the machine's driver from ``config`` and contact its BMC: (registration, problem)."""
    from core.errors import InputParameterError

    rt = runtime()
    try:
        hosted = build(rt.data_dir, host_id, "baremetal", config, rt.drivers.images())
    except DriverError as exc:
        raise InputParameterError(f"host {name}: {exc}") from None
    try:
        return register_remote(hosted)
    finally:
        hosted.close()


def _tried(request: Request, cred: Credential, ident: str, op: str, change: Any, why: str
           ) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """(host id, name, new config, registration) once the machine's BMC answered with ``change`` applied
    to its config; else the failure is recorded on the host and raised (400, ``why`` + the BMC's reason)."""
    host_id, name, config = _machine_config(request, cred, ident, op)
    config = _merged(config, change)
    reg, problem = _try_bmc(name, host_id, config)
    if problem:
        record(request.app.state.db, host_id, {**reg["sys_info"].get("bmc", {})}, cred=cred,
               action="update" if op == "update" else "prepare")
        raise InvalidStatusError(f"host {name}: {why}{problem}")
    return host_id, name, config, reg


# host-update's BMC fields (Cloudpods' HostUpdateOptions: ipmi_username, ipmi_password, ipmi_ip_addr)
BMC_UPDATE_KEYS = ("ipmi_ip", "ipmi_ip_addr", "ipmi_port", "ipmi_username", "ipmi_password", "redfish_url",
                   "redfish_system")


@router.put("/hosts/{ident}")
@router.patch("/hosts/{ident}")
def host_update(ident: str, request: Request, session: SessionDep, cred: CredentialDep, body: Any = AnyBody
                ) -> Response:
    """A host update; one that changes a machine's BMC address or credentials is tried on the BMC first
    (outside any transaction): a wrong password is a 400 naming the fix and changes nothing. The new
    config is stored encrypted, never shown; the audit record says which fields changed, not their values."""
    from core.region.common import unwrap
    from core.region.routes import update_resource

    data = unwrap(body, "host")
    if not isinstance(data, dict) or not any(k in data for k in BMC_UPDATE_KEYS):
        return update_resource(session, cred, "hosts", ident, body)
    session.rollback()
    rest = {k: v for k, v in data.items() if k not in BMC_UPDATE_KEYS}
    given = {k: data[k] for k in BMC_UPDATE_KEYS if k in data}
    if "ipmi_ip_addr" in given:
        given.setdefault("ipmi_ip", given.pop("ipmi_ip_addr"))
        given.pop("ipmi_ip_addr", None)
    change = parse(PrepareIn, given)
    fields = ", ".join(sorted(k for k, v in change.model_dump().items() if v not in (None, "")))
    db = request.app.state.db
    host_id, name, new, reg = _tried(request, cred, ident, "update", change,
                                     f"the new BMC settings ({fields}) were not saved: ")
    from core.region.models import Host
    from core.region.registry import get_manager

    with db.session() as s:
        begin_write(s)
        h = s.get(Host, host_id)
        if h is None:
            raise InvalidStatusError(f"host {name} was deleted meanwhile")
        h.driver_config = encrypt_config(new)
        h.generation += 1
        get_manager("hosts").audit(s, cred, "update", h, notes=f"BMC settings changed: {fields}")
    record(db, host_id, {**reg["sys_info"].get("bmc", {}), "ipmi_status": "ok", "ipmi_reason": ""})
    if rest:
        return update_resource(session, cred, "hosts", ident, {"host": rest})
    with db.session() as s:
        m = get_manager("hosts")
        out = m.to_dict(s, m.fetch(s, cred, host_id))
    return json_response({"host": out})


class PrepareIn(BaseModel):
    """A machine's BMC (Cloudpods' host-create/prepare field names); all optional on a re-prepare."""

    model_config = ConfigDict(extra="forbid")
    ipmi_ip: str | None = None
    ipmi_port: int | None = None
    ipmi_username: str | None = None
    ipmi_password: str | None = None
    redfish_url: str | None = None
    redfish_system: str | None = None


@router.post("/hosts/{ident}/prepare")
def host_prepare(ident: str, request: Request, cred: CredentialDep, body: Any = AnyBody) -> Response:
    """``baremetal-prepare``: give an enrolled machine its BMC (or read an existing one again): the BMC is
    contacted, the inventory read into the host's capacity; the host leaves ``prepare`` enabled."""
    from core.region.models import Host
    from core.region.registry import get_manager

    data = parse(PrepareIn, (body or {}).get("host", body) if isinstance(body, dict) and body else {})
    m = get_manager("hosts")
    db = request.app.state.db
    host_id, name, config, reg = _tried(request, cred, ident, "perform", data, "")
    with db.session() as s:
        begin_write(s)
        h = s.get(Host, host_id)
        if h is None:
            raise InvalidStatusError(f"host {name} was deleted meanwhile")
        info = dict(h.sys_info or {})
        info.update(reg.pop("sys_info", {}))
        info.pop("executor_error", None)
        h.sys_info = info
        for k in ("cpu_count", "mem_size", "cpu_arch", "version", "driver_version", "capabilities"):
            if k in reg:
                setattr(h, k, reg[k])
        h.driver_config = encrypt_config(config)
        was = h.status
        h.status, h.enabled, h.host_status, h.last_ping_at = "running", True, "online", utcnow()
        h.generation += 1
        m.audit(s, cred, "prepare", h, notes=f"from {was}")
        s.flush()
        out = m.to_dict(s, h)
        s.commit()
    return json_response({"host": out})
