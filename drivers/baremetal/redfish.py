"""The Redfish implementation of a machine's management interface, on httpx (no extra SDK).

One ComputerSystem per host: ``redfish_system`` names it, else the BMC's only (or first) system.
Power changes may land seconds after the BMC accepted them (sushy's fake driver: 1-11 s): the
power call reads back until the state is the one asked for, within the configured timeout.
"""
from __future__ import annotations

from typing import Any

import httpx

from drivers.baremetal.common import BmcConfig, Bounded, await_power, health_of
from drivers.base import BmcError, BootDevice, MachineInventory, PowerState, Sensor

_RESET = {"on": "On", "off": "ForceOff", "soft": "GracefulShutdown", "reset": "ForceRestart"}
_BOOT = {BootDevice.PXE: "Pxe", BootDevice.DISK: "Hdd", BootDevice.CDROM: "Cd", BootDevice.BIOS: "BiosSetup"}
_BOOT_BACK = {v: k.value for k, v in _BOOT.items()}
_HEALTH = {"OK": "ok", "Warning": "warning", "Critical": "critical"}


class RedfishBmc:
    protocol = "redfish"

    def __init__(self, cfg: BmcConfig) -> None:
        self.cfg = cfg
        self.address = cfg.url
        self._client: httpx.Client | None = None
        self._system: str = ""
        self.calls = Bounded(cfg, self._forget)

    def info(self) -> dict[str, Any]:
        return self.cfg.public()

    def validate(self) -> None:
        return None  # parse_config checked the URL and credentials; nothing to contact here

    def _forget(self) -> None:
        self._system = ""

    def _http(self) -> httpx.Client:
        if self._client is None:
            t = self.cfg.timeout_s
            self._client = httpx.Client(base_url=self.cfg.url, auth=(self.cfg.username, self.cfg.password),
                                        verify=self.cfg.verify_tls, timeout=httpx.Timeout(t, connect=min(t, 5.0)),
                                        headers={"Accept": "application/json"})
        return self._client

    def _req(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = self._http().request(method, path, **kw)
        except httpx.TimeoutException:
            raise BmcError(f"BMC {self.address} did not answer {method} {path} within {self.cfg.timeout_s:g} s: "
                           "check that it is up and reachable from the controller", "unreachable") from None
        except httpx.HTTPError as exc:
            raise BmcError(f"BMC {self.address} cannot be reached ({exc}): check the URL and that the controller "
                           "reaches it", "unreachable") from None
        if r.status_code in (401, 403):
            raise BmcError(f"BMC {self.address} refused user {self.cfg.username!r} (HTTP {r.status_code}): check "
                           "the username and password (climc host-update HOST --ipmi-username U "
                           "--ipmi-password P)", "auth_failed")
        if r.status_code >= 400:
            raise BmcError(f"BMC {self.address}: {method} {path} answered HTTP {r.status_code}: {_message(r)}")
        if r.status_code == 204 or not r.content:
            return {}
        try:
            return r.json()
        except ValueError:
            raise BmcError(f"BMC {self.address}: {path} is not JSON: is {self.cfg.url} a Redfish service?") from None

    def _system_path(self) -> str:
        if not self._system:
            members = [m.get("@odata.id", "") for m in self._req("GET", "/redfish/v1/Systems").get("Members", [])]
            members = [m for m in members if m]
            if not members:
                raise BmcError(f"BMC {self.address} lists no ComputerSystem under /redfish/v1/Systems")
            if self.cfg.system:
                match = [m for m in members if m.rstrip("/").rsplit("/", 1)[-1] == self.cfg.system]
                if not match:
                    raise BmcError(f"BMC {self.address} has no system {self.cfg.system!r}; it has "
                                   f"{', '.join(m.rsplit('/', 1)[-1] for m in members)} (set redfish_system)")
                self._system = match[0]
            else:
                self._system = members[0]
        return self._system

    def _do(self, what: str, fn: Any, *, retry: bool = True, slow: bool = False) -> Any:
        return self.calls.call(what, fn, retry=retry, slow=slow)

    def _get_system(self) -> dict[str, Any]:
        return dict(self._req("GET", self._system_path()))

    # ---- power ------------------------------------------------------------------------------------
    def get_power_state(self) -> PowerState:
        st = str(self._do("a power status read", self._get_system).get("PowerState", "")).lower()
        return PowerState(st) if st in ("on", "off") else PowerState.UNKNOWN

    def set_power_state(self, action: str) -> PowerState:
        if action not in _RESET:
            raise BmcError(f"power action must be one of {', '.join(_RESET)}, got {action!r}")

        def reset() -> None:
            self._req("POST", f"{self._system_path()}/Actions/ComputerSystem.Reset", json={"ResetType": _RESET[action]})

        self._do(f"power {action}", reset, retry=action in ("on", "off"))
        want = {"on": "on", "off": "off", "soft": "off"}.get(action)
        if want:  # Redfish applies power changes late
            return await_power(self.get_power_state, want, max(self.cfg.timeout_s, 15.0), 0.25)
        return self.get_power_state()

    # ---- management -------------------------------------------------------------------------------
    def set_boot_device(self, device: BootDevice, *, persistent: bool = False) -> None:
        body = {"Boot": {"BootSourceOverrideTarget": _BOOT[device],
                         "BootSourceOverrideEnabled": "Continuous" if persistent else "Once"}}
        self._do(f"a boot device set ({device.value})", lambda: self._req("PATCH", self._system_path(), json=body))

    def get_boot_device(self) -> str:
        boot = self._do("a boot device read", self._get_system).get("Boot") or {}
        target = str(boot.get("BootSourceOverrideTarget") or "None")
        return _BOOT_BACK.get(target, target.lower())

    # ---- inventory and sensors ------------------------------------------------------------------------
    def inventory(self) -> MachineInventory:
        def read() -> MachineInventory:
            s = self._get_system()
            macs: list[str] = []
            nics = (s.get("EthernetInterfaces") or {}).get("@odata.id")
            if nics:
                for m in self._req("GET", nics).get("Members", []):
                    mac = self._req("GET", m["@odata.id"]).get("MACAddress") or ""
                    if mac:
                        macs.append(mac.lower())
            proc = s.get("ProcessorSummary") or {}
            mem = s.get("MemorySummary") or {}
            return MachineInventory(
                manufacturer=str(s.get("Manufacturer") or ""), model=str(s.get("Model") or ""),
                serial=str(s.get("SerialNumber") or ""), uuid=str(s.get("UUID") or ""),
                cpu_count=int(proc.get("LogicalProcessorCount") or proc.get("Count") or 0),
                memory_mb=int(float(mem.get("TotalSystemMemoryGiB") or 0) * 1024), nic_macs=tuple(macs),
                firmware=str(s.get("BiosVersion") or ""),
                extra={"name": str(s.get("Name") or ""), "id": str(s.get("Id") or "")})

        return self._do("an inventory read", read, slow=True)  # type: ignore[no-any-return]

    def sensors(self) -> list[Sensor]:
        def read() -> list[Sensor]:
            out: list[Sensor] = []
            s = self._get_system()
            status = s.get("Status") or {}
            out.append(Sensor(name="System", value=None, unit="",
                              health=_HEALTH.get(str(status.get("Health") or ""), "unknown"),
                              states=tuple(str(v) for v in status.values())))
            for ch in (s.get("Links") or {}).get("Chassis", []):
                thermal = self._req("GET", ch["@odata.id"]).get("Thermal", {}).get("@odata.id")
                if not thermal:
                    continue
                t = self._req("GET", thermal)
                for r in t.get("Temperatures", []):
                    out.append(Sensor(name=str(r.get("Name")), value=r.get("ReadingCelsius"), unit="°C",
                                      health=_HEALTH.get(str((r.get("Status") or {}).get("Health")), "unknown")))
                for r in t.get("Fans", []):
                    out.append(Sensor(name=str(r.get("Name") or r.get("FanName")), value=r.get("Reading"),
                                      unit=str(r.get("ReadingUnits") or "RPM"),
                                      health=_HEALTH.get(str((r.get("Status") or {}).get("Health")), "unknown")))
            return out

        return self._do("a sensor read", read, slow=True)  # type: ignore[no-any-return]

    def health(self) -> str:
        status = self._do("a health read", self._get_system).get("Status") or {}
        return health_of([_HEALTH.get(str(status.get("HealthRollup") or status.get("Health") or "OK"), "unknown")])

    def close(self) -> None:
        c, self._client = self._client, None
        if c is not None:
            c.close()


def _message(r: httpx.Response) -> str:
    try:
        err = r.json().get("error", {})
        ext = err.get("@Message.ExtendedInfo") or []
        return str((ext[0].get("Message") if ext else None) or err.get("message") or r.text[:200])
    except (ValueError, AttributeError, IndexError):
        return r.text[:200]
