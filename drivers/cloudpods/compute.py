"""Servers of one zone of another Cloudpods controller, as a hosted driver (the executor runs the
host contract's work items on it): create, start, stop, restart, delete through that API.

A server made here is found there by its description (``cloudpods:server-id=<id>``); one the sync
imported by the stable id drivers.base ``imported_server_id`` gave it. A network is chosen there
by the zone and the address the region here allocated (the other side's IPAM is given that address).
"""
from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from typing import Any

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
    InstanceSpec,
    InvalidSpec,
    NoDiskVerbs,
    imported_server_id,
)
from drivers.cloudpods.provider import SERVER_TAG, instance_of
from drivers.cloudpods.session import COMPUTE, Remote

VERSION = "1"
CAPABILITIES = frozenset({Capability.GRACEFUL_STOP, Capability.REBOOT})
WAIT_S = 300.0
SETTLED = {"running", "ready", "suspend", "unknown"}


class CloudpodsServers(CloudZoneGuests):
    name = "cloudpods"
    capabilities = CAPABILITIES

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.remote = Remote(config)
        self.zone = str(config.get("zone") or "")
        self.manager_id = str(config.get("manager_id") or "")

    def _get(self, rid: str) -> dict[str, Any] | None:
        try:
            return dict(self.remote.request("GET", f"{COMPUTE}/servers/{rid}")["server"])
        except LookupError:
            return None

    def find(self, guest_id: str) -> dict[str, Any]:
        params = {"zone": self.zone} if self.zone else {}
        for s in self.remote.all(f"{COMPUTE}/servers", "servers", **params):
            desc = str(s.get("description") or "")
            if desc == f"{SERVER_TAG}{guest_id}" or s["id"] == guest_id or (
                    self.manager_id and imported_server_id(self.manager_id, s["id"]) == guest_id):
                return dict(s)
        raise GuestNotFound(guest_id)

    def get_guest(self, guest_id: str) -> Guest:
        ci = instance_of(self.find(guest_id))
        return Guest(id=ci.external_id, name=ci.name, status=ci.status, extra=dict(ci.extra))

    def list_guests(self) -> list[Guest]:
        params = {"zone": self.zone} if self.zone else {}
        return [Guest(id=c.external_id, name=c.name, status=c.status)
                for c in (instance_of(s) for s in self.remote.all(f"{COMPUTE}/servers", "servers", **params))]

    def wait(self, rid: str, want: set[str]) -> str:
        end = time.monotonic() + WAIT_S
        status = ""
        while time.monotonic() < end:
            s = self._get(rid)
            status = "gone" if s is None else str(s.get("status") or "")
            if status in want:
                return status
            if status.endswith("_fail"):
                reason = (s or {}).get("fail_reason") or (s or {}).get("status_reason") or ""
                raise HypervisorError(f"cloudpods: server {rid} is {status} there: {reason}")
            time.sleep(0.5)
        raise HypervisorError(f"cloudpods: server {rid} is still {status} after {WAIT_S:.0f} s")

    def _act(self, guest_id: str, action: str, body: dict[str, Any], want: set[str]) -> None:
        rid = self.find(guest_id)["id"]
        self.remote.request("POST", f"{COMPUTE}/servers/{rid}/{action}", json=body)
        self.wait(rid, want)

    def start_guest(self, guest_id: str) -> None:
        self._act(guest_id, "start", {}, {"running"})

    def stop_guest(self, guest_id: str, *, timeout: float = 60.0) -> None:
        self._act(guest_id, "stop", {"is_force": timeout <= 0}, {"ready"})

    def reboot_guest(self, guest_id: str) -> None:
        self._act(guest_id, "restart", {}, {"running"})

    def delete_guest(self, guest_id: str) -> None:
        rid = self.find(guest_id)["id"]
        try:
            self.remote.request("DELETE", f"{COMPUTE}/servers/{rid}", params={"override_pending_delete": "true"})
        except LookupError:
            return
        self.wait(rid, {"gone"})

    def host_facts(self) -> HostFacts:
        return self.zone_facts(self.zone, VERSION)

    def close(self) -> None:
        self.remote.close()


class CloudpodsHosted(CloudZoneHosted, NoDiskVerbs):
    name = "cloudpods"
    version = VERSION
    capabilities = CAPABILITIES

    def __init__(self, env: HostEnv) -> None:
        self.env = env
        self.driver: CloudpodsServers = CloudpodsServers(env.options)

    def validate(self) -> None:
        self.driver.remote.login()
        if self.driver.zone:
            self.driver.remote.request("GET", f"{COMPUTE}/zones/{self.driver.zone}")

    def _network_for(self, ip: str) -> str:
        params = {"zone": self.driver.zone} if self.driver.zone else {}
        addr = ipaddress.ip_address(ip)
        for n in self.driver.remote.all(f"{COMPUTE}/networks", "networks", **params):
            lo, hi = ipaddress.ip_address(n["guest_ip_start"]), ipaddress.ip_address(n["guest_ip_end"])
            if lo.version == addr.version and int(lo) <= int(addr) <= int(hi):  # a v6 range never holds a v4 address
                return str(n["id"])
        raise InvalidSpec(f"cloudpods: no network of zone {self.driver.zone} holds {ip}")

    def deploy(self, spec: InstanceSpec) -> Deployed:
        found: dict[str, Any] | None
        try:  # a redelivered item: the server exists there already
            found = self.driver.find(spec.server_id)
            rid = str(found["id"])
        except GuestNotFound:
            found = None
        if found is None:
            if not spec.disks or not spec.disks[0].image_id:
                raise InvalidSpec("cloudpods: the system disk needs an image of that cloud (a cached image)")
            disks: list[Any] = [{"image_id": spec.disks[0].image_id, "size": spec.disks[0].size_mb}]
            disks += [{"size": d.size_mb} for d in spec.disks[1:]]
            body = {"name": spec.name, "description": f"{SERVER_TAG}{spec.server_id}", "vcpu_count": spec.vcpu,
                    "vmem_size": spec.memory_mb, "disks": disks, "auto_start": spec.auto_start,
                    "nets": [{"network": self._network_for(n.ip), "address": n.ip} for n in spec.nics],
                    "prefer_zone": self.driver.zone}
            if spec.user_data:
                body["user_data"] = spec.user_data
            out = self.driver.remote.request("POST", f"{COMPUTE}/servers", json={"server": body})
            made = out.get("server") or (out.get("servers") or [{}])[0]
            rid = str(made.get("id") or made.get("body", {}).get("id") or "")
            if not rid:
                raise HypervisorError(f"cloudpods: the other controller did not say which server it made: {out}")
        status = self.driver.wait(rid, {"running", "ready"})
        return Deployed(guest_id=rid, status=GuestStatus.RUNNING if status == "running" else GuestStatus.STOPPED)
