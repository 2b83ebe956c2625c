"""The host contract holds together: every kind has a payload, a result, a handler; every kind the
region dispatches is one of them; a driver that declares a capability really handles the kinds
that need it (on the real KVM driver, libvirt's test:/// hypervisor); a capability-gated server
action is refused by the API for hosts that lack it (ACTION_CAPABILITY covers every gated kind)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from core import host_protocol as hp
from core.agent.handlers import HANDLERS, handle
from core.host_protocol import ACTION_CAPABILITY, KIND_CAPABILITY, PAYLOADS, RESULTS, ContractError, WorkKind
from drivers.base import DriverUnavailable, HostEnv, NotSupported

REPO = Path(__file__).resolve().parents[3]
SID = "0f0e0d0c-0b0a-4909-8807-060504030201"  # a guest no hypervisor here has
_SRV = {"id": SID, "name": "nobody"}
_SPEC = {**_SRV, "vcpu_count": 1, "vmem_size": 64}
_DISK = {"id": "d1", "index": 1, "size": 16}
_NIC = {"index": 1, "ip": "10.0.0.5", "mac": "00:16:3e:00:00:05", "mask": 24}
# a minimal valid payload per kind (a new kind must get one here, or this module fails)
PAYLOAD: dict[WorkKind, dict[str, Any]] = {
    WorkKind.DEPLOY: {"server": _SPEC},
    WorkKind.DELETE: {"server": _SRV},
    WorkKind.START: {"server": _SRV}, WorkKind.STOP: {"server": _SRV}, WorkKind.RESTART: {"server": _SRV},
    WorkKind.RESET: {"server": _SRV}, WorkKind.SUSPEND: {"server": _SRV}, WorkKind.RESUME: {"server": _SRV},
    WorkKind.STATUS: {"server": _SRV},
    WorkKind.RECONFIGURE: {"server": _SRV, "vcpu_count": 2, "vmem_size": 128},
    WorkKind.ATTACH_DISK: {"server": _SRV, "disk": _DISK},
    WorkKind.DETACH_DISK: {"server": _SRV, "disk": _DISK},
    WorkKind.REBUILD_ROOT: {"server": _SPEC},
    WorkKind.MIGRATE_OUT: {"server": _SRV, "target_host_id": "h2"},
    WorkKind.MIGRATE_IN: {"server": _SPEC, "source_host_id": "h1"},
    WorkKind.MIGRATE_CLEANUP: {"server": _SRV},
    WorkKind.LIVE_MIGRATE_PREPARE: {"server": _SPEC, "source_host_id": "h1"},
    WorkKind.LIVE_MIGRATE: {"server": _SRV, "target_host_id": "h2", "target": {"uri": "qemu+tcp://h2/system"}},
    WorkKind.SNAPSHOT_CREATE: {"server": _SRV, "disk": _DISK, "snapshot_id": SID},
    WorkKind.SNAPSHOT_DELETE: {"server": _SRV, "disk": _DISK, "snapshot_id": SID},
    WorkKind.DISK_RESET: {"server": _SRV, "disk": _DISK, "snapshot_id": SID},
    WorkKind.INSTANCE_SNAPSHOT_CREATE: {"server": _SRV, "disks": [_DISK], "snapshot_ids": [SID]},
    WorkKind.RESET_PASSWORD: {"server": {**_SPEC, "password": "pw-Secret-1"}},
    WorkKind.CDROM: {"server": _SRV, "image_id": SID},
    WorkKind.BOOT_ORDER: {"server": _SPEC, "disks": [_DISK], "boot_order": ["cdrom", "disk0"]},
    WorkKind.SAVE_IMAGE: {"server": _SRV, "disks": [_DISK], "image_id": SID},
    WorkKind.DISK_RESIZE: {"server": _SRV, "disk": _DISK, "size": 32},
    WorkKind.DISK_DELETE: {"disk": _DISK},
    WorkKind.ATTACH_NIC: {"server": _SRV, "nic": _NIC},
    WorkKind.DETACH_NIC: {"server": _SRV, "nic": _NIC},
}


def test_every_kind_has_payload_result_handler_and_a_sample() -> None:
    kinds = set(WorkKind)
    assert set(PAYLOADS) == kinds and set(RESULTS) == kinds and set(HANDLERS) == kinds and set(PAYLOAD) == kinds
    for k, body in PAYLOAD.items():
        hp.parse_payload(k, body)  # the samples are valid, so the driver test below reaches the driver


def test_every_kind_the_region_dispatches_is_in_the_contract() -> None:
    src = "\n".join(p.read_text() for p in (REPO / "core").rglob("*.py"))
    dispatched = set(re.findall(r"dispatch\([^)]*?WorkKind\.([A-Z_]+)", src, re.S))
    assert dispatched, "found no dispatch(...) call: the scan is broken"
    assert dispatched <= {k.name for k in WorkKind}
    # the executor runs the agent's own table: no second list of handlers to forget a kind in
    assert "from core.agent.handlers import handle" in (REPO / "core/hostapi/executor.py").read_text()


def test_capability_gated_kinds_are_refused_by_the_api_when_undeclared() -> None:
    # every capability a work kind needs is one a server action asks the API to check first
    assert set(KIND_CAPABILITY.values()) <= set(ACTION_CAPABILITY.values())


def test_unknown_kind_and_bad_payload_are_contract_errors() -> None:
    with pytest.raises(ContractError, match="guest-teleport"):
        hp.work_kind("guest-teleport")
    with pytest.raises(ContractError):
        hp.parse_payload(WorkKind.RECONFIGURE, {"server": _SRV, "vcpu_count": 0, "vmem_size": 128})
    with pytest.raises(ContractError):
        hp.parse_payload(WorkKind.START, {"server": _SRV, "surprise": 1})


class _NoNetwork:
    """No guest here gets this far (every sample names a guest the hypervisor lacks)."""

    def plug(self, nic: Any, hostname: str | None = None) -> str:
        raise AssertionError("no guest should be plugged in a contract test")

    def unplug(self, mac: str) -> None:
        pass


# drivers whose API is remote get an endpoint that refuses connections: each call fails there
# (a HypervisorError), which is "it got to work", while NotSupported comes before any call
_REMOTE_OPTIONS: dict[str, dict[str, Any]] = {
    "esxi": {"host": "127.0.0.1", "port": 9, "username": "contract", "password": "contract", "http_timeout_s": 2},
    "aws": {"access_url": "http://127.0.0.1:9", "account": "AKIAEXAMPLE", "secret": "x", "region": "us-east-1",
            "zone": "us-east-1a", "manager_id": "m"},
    "cloudpods": {"access_url": "http://127.0.0.1:9", "account": "contract", "secret": "x", "zone": "z",
                  "manager_id": "m"},
}


def _hosted_drivers(tmp_path: Path, node_uri: str) -> list[Any]:
    from drivers.registry import DRIVERS, get_driver

    out, missing = [], []
    for name in DRIVERS:
        try:
            cls = get_driver(name)
        except DriverUnavailable as exc:  # only a missing SDK may skip (that driver): anything else fails
            missing.append(f"driver {name}: {exc}")
            continue
        env = HostEnv(uri=node_uri, data_dir=str(tmp_path), instances_dir=str(tmp_path / "instances"),
                      images=None, network=_NoNetwork(), domain_type="test", stop_timeout_s=1.0,
                      options=_REMOTE_OPTIONS.get(name, {}))
        out.append(cls.for_host(env))
    if missing:  # the drivers that are here are checked; the others skip (fail in the full tier)
        from tests.support.peers import FULL

        if FULL:
            pytest.fail("; ".join(missing))
        import warnings

        warnings.warn("not checked: " + "; ".join(missing), stacklevel=2)
    return out


def test_a_driver_handles_every_kind_its_capabilities_allow(tmp_path: Path, node_uri: str) -> None:
    """Declared => handled (the API refuses undeclared ones: test above). A kind that reaches the
    driver fails here only for the missing guest; NotSupported means the declaration lies."""
    for hosted in _hosted_drivers(tmp_path, node_uri):
        try:
            for kind, cap in KIND_CAPABILITY.items():
                try:
                    handle(hosted, kind.value, PAYLOAD[kind])
                except NotSupported as exc:
                    assert cap not in hosted.capabilities, \
                        f"{hosted.name} declares {cap.value} but does not handle {kind.value}: {exc}"
                except Exception:
                    pass
        finally:
            hosted.close()
