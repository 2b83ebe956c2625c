"""What another Cloudpods controller has, as drivers.base value objects (the sync's side).

Lists are Cloudpods' envelopes paged by offset (the page token is the next offset). Networks
take their zone and VPC from their wire; disks their zone from their storage (both read once per
sync). Statuses go through the maps below; anything unmapped is unknown.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    Page,
    ProviderCapability,
    map_status,
)
from drivers.cloudpods.session import COMPUTE, IMAGE, Remote

PAGE_SIZE = 500
SERVER_TAG = "cloudpods:server-id="  # the description of a server a server-create here made there

SERVER_STATUS: dict[str, GuestStatus] = {
    "running": GuestStatus.RUNNING, "ready": GuestStatus.STOPPED, "suspend": GuestStatus.SUSPENDED,
    "stopping": GuestStatus.SHUTTING_DOWN, "starting": GuestStatus.RUNNING, "deploying": GuestStatus.RUNNING,
}
DISK_STATUS: dict[str, CloudStatus] = {"ready": CloudStatus.AVAILABLE, "allocating": CloudStatus.CREATING,
                                       "deleting": CloudStatus.DELETING, "alloc_failed": CloudStatus.ERROR}
IMAGE_STATUS: dict[str, CloudStatus] = {"active": CloudStatus.AVAILABLE, "saving": CloudStatus.CREATING,
                                        "queued": CloudStatus.CREATING, "killed": CloudStatus.ERROR}
CAPABILITIES = frozenset({ProviderCapability.SYNC, ProviderCapability.COMPUTE})


def server_id_of(description: str) -> str:
    d = description or ""
    return d[len(SERVER_TAG):].strip() if d.startswith(SERVER_TAG) else ""


def instance_of(s: Mapping[str, Any]) -> CloudInstance:
    return CloudInstance(
        external_id=str(s["id"]), name=str(s.get("name") or s["id"]), zone_id=str(s.get("zone_id") or ""),
        status=map_status(SERVER_STATUS, s.get("status"), GuestStatus.UNKNOWN), vcpu=int(s.get("vcpu_count") or 0),
        memory_mb=int(s.get("vmem_size") or 0),
        private_ips=tuple((str(n.get("network_id") or ""), str(n.get("ip_addr") or ""))
                          for n in s.get("nics") or [] if n.get("ip_addr")),
        server_id=server_id_of(str(s.get("description") or "")), os_type=str(s.get("os_type") or ""),
        extra={"status": s.get("status", ""), "host": s.get("host", "")})


class CloudpodsProvider:
    name = "cloudpods"
    capabilities = CAPABILITIES

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.remote = Remote(config)
        self._wires: dict[str, dict[str, Any]] | None = None
        self._storages: dict[str, str] | None = None

    def validate(self) -> dict[str, Any]:
        self.remote.login()
        zones = self.remote.request("GET", f"{COMPUTE}/zones", params={"limit": 1})
        return {"zones": int(zones.get("total") or len(zones.get("zones") or []))}

    def close(self) -> None:
        self.remote.close()

    def fetch_page(self, kind: str, page_token: str = "") -> Page:
        fn = getattr(self, f"_{kind}", None)
        if fn is None:
            return Page(())
        offset = int(page_token) if page_token.isdigit() else 0
        size = int(self.remote.options.get("page_size") or PAGE_SIZE)
        items, nxt = fn(offset, size)
        return Page(tuple(items), str(nxt) if nxt else "")

    def _list(self, path: str, key: str, offset: int, size: int, **params: Any) -> tuple[list[Any], int]:
        return self.remote.page(path, key, offset, size, **params)

    def _cloudregions(self, offset: int, size: int) -> tuple[list[Any], int]:
        raw, nxt = self._list(f"{COMPUTE}/cloudregions", "cloudregions", offset, size)
        return [CloudRegion(external_id=r["id"], name=r["name"]) for r in raw], nxt

    def _zones(self, offset: int, size: int) -> tuple[list[Any], int]:
        raw, nxt = self._list(f"{COMPUTE}/zones", "zones", offset, size)
        return [CloudZone(external_id=z["id"], name=z["name"], region_id=str(z.get("cloudregion_id") or ""),
                          status=CloudStatus.AVAILABLE if z.get("status") == "enable" else CloudStatus.UNKNOWN)
                for z in raw], nxt

    def _vpcs(self, offset: int, size: int) -> tuple[list[Any], int]:
        raw, nxt = self._list(f"{COMPUTE}/vpcs", "vpcs", offset, size)
        return [CloudVpc(external_id=v["id"], name=v["name"], region_id=str(v.get("cloudregion_id") or ""),
                         cidr_block=str(v.get("cidr_block") or ""), is_default=v["id"] == "default") for v in raw], nxt

    def wires(self) -> dict[str, dict[str, Any]]:
        if self._wires is None:
            self._wires = {w["id"]: w for w in self.remote.all(f"{COMPUTE}/wires", "wires")}
        return self._wires

    def _networks(self, offset: int, size: int) -> tuple[list[Any], int]:
        raw, nxt = self._list(f"{COMPUTE}/networks", "networks", offset, size)
        out = []
        for n in raw:
            w = self.wires().get(str(n.get("wire_id") or ""), {})
            out.append(CloudNetwork(external_id=n["id"], name=n["name"], vpc_id=str(w.get("vpc_id") or ""),
                                    zone_id=str(w.get("zone_id") or ""),
                                    cidr=f"{n['guest_ip_start']}/{int(n.get('guest_ip_mask') or 24)}",
                                    ip_start=n["guest_ip_start"], ip_end=n["guest_ip_end"],
                                    gateway=str(n.get("guest_gateway") or ""),
                                    extra={"server_type": n.get("server_type", "")}))
        return out, nxt

    def _secgroups(self, offset: int, size: int) -> tuple[list[Any], int]:
        raw, nxt = self._list(f"{COMPUTE}/secgroups", "secgroups", offset, size)
        out = []
        for g in raw:
            rules = [CloudSecgroupRule(direction=str(r.get("direction") or "in"),
                                       protocol=str(r.get("protocol") or "any"),
                                       ports=str(r.get("ports") or ""), cidr=str(r.get("cidr") or ""),
                                       action=str(r.get("action") or "allow"), priority=int(r.get("priority") or 1))
                     for r in self.remote.all(f"{COMPUTE}/secgroups/{g['id']}/secgrouprules", "secgrouprules")]
            out.append(CloudSecgroup(external_id=g["id"], name=g["name"], description=str(g.get("description") or ""),
                                     rules=tuple(rules)))
        return out, nxt

    def _cachedimages(self, offset: int, size: int) -> tuple[list[Any], int]:
        raw, nxt = self._list(f"{IMAGE}/images", "images", offset, size)
        return [CloudImage(external_id=i["id"], name=i["name"],
                           size_mb=max(int(i.get("min_disk") or 0), (int(i.get("virtual_size") or i.get("size") or 0)
                                                                      + (1 << 20) - 1) >> 20),
                           os_type=str(i.get("os_type") or (i.get("properties") or {}).get("os_type") or ""),
                           status=map_status(IMAGE_STATUS, i.get("status"), CloudStatus.UNKNOWN),
                           is_public=bool(i.get("is_public"))) for i in raw], nxt

    def _servers(self, offset: int, size: int) -> tuple[list[Any], int]:
        raw, nxt = self._list(f"{COMPUTE}/servers", "servers", offset, size)
        return [instance_of(s) for s in raw], nxt

    def storages(self) -> dict[str, str]:
        if self._storages is None:
            self._storages = {s["id"]: str(s.get("zone_id") or "")
                              for s in self.remote.all(f"{COMPUTE}/storages", "storages")}
        return self._storages

    def _disks(self, offset: int, size: int) -> tuple[list[Any], int]:
        raw, nxt = self._list(f"{COMPUTE}/disks", "disks", offset, size)
        return [CloudDisk(external_id=d["id"], name=d["name"],
                          zone_id=self.storages().get(str(d.get("storage_id") or ""), ""),
                          size_mb=int(d.get("disk_size") or 0),
                          status=(CloudStatus.IN_USE if d.get("server_id") and d.get("status") == "ready"
                                  else map_status(DISK_STATUS, d.get("status"), CloudStatus.UNKNOWN)),
                          disk_type=str(d.get("disk_type") or "data"), instance_id=str(d.get("server_id") or ""),
                          device=str(d.get("disk_index", ""))) for d in raw], nxt

    def _eips(self, offset: int, size: int) -> tuple[list[Any], int]:
        raw, nxt = self._list(f"{COMPUTE}/eips", "eips", offset, size)
        return [CloudEip(external_id=e["id"], name=e["name"], ip_addr=str(e.get("ip_addr") or ""),
                         instance_id=str(e.get("associate_id") or "") if e.get("associate_type") == "server" else "")
                for e in raw], nxt
