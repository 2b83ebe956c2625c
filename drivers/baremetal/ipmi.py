"""The IPMI implementation of a machine's management interface, on pyghmi (extra ``baremetal``).

pyghmi negotiates the RMCP+ cipher suite itself (SHA-256 first, then suite 3), keeps one session
per BMC alive in its own I/O thread, and re-logs in when asked. We bound every call (``Bounded``):
a stopped BMC otherwise costs pyghmi ~30 s per call before it says "Session no longer connected".
Its serial-over-LAN console is drivers/baremetal/sol.py.
"""
from __future__ import annotations

import threading
from typing import Any

from drivers.baremetal.common import BmcConfig, Bounded, await_power, health_of, pyghmi
from drivers.baremetal.sol import SolStream
from drivers.base import BmcError, BootDevice, MachineInventory, PowerState, Sensor

_BOOTDEV = {BootDevice.PXE: "network", BootDevice.DISK: "hd", BootDevice.CDROM: "optical", BootDevice.BIOS: "setup"}
_BOOTDEV_BACK = {v: k.value for k, v in _BOOTDEV.items()}
_POWER = {"on": "on", "off": "off", "soft": "shutdown", "reset": "reset"}
_FRU_READ, _REQ_TOO_LONG, _CANNOT_RETURN = 0x11, 0xC8, 0xCA


# One pyghmi Command per BMC (address, port, user, password) in this process. pyghmi shares one
# session per BMC among Command objects, and a second Command on a live shared session was seen
# to hang every call until our deadline: so every IpmiBmc of one BMC uses the same Command, and
# a failed one is dropped for all (the next call logs in again).
_COMMANDS: dict[tuple[str, int, str, str], Any] = {}
_COMMANDS_LOCK = threading.Lock()


def _health(bits: int) -> str:
    # pyghmi's Health bits: 1 warning, 2 critical, 4 failed
    return "critical" if bits & 6 else "warning" if bits & 1 else "ok"


class IpmiBmc:
    protocol = "ipmi"

    def __init__(self, cfg: BmcConfig) -> None:
        self.cfg = cfg
        self.address = cfg.address
        self._cmd: Any = None
        self.calls = Bounded(cfg, self._forget)

    # ---- session --------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return self.cfg.public()

    def validate(self) -> None:
        pyghmi()  # config was checked by parse_config; this checks the SDK, without contacting the BMC

    @property
    def _key(self) -> tuple[str, int, str, str]:
        return (self.cfg.host, self.cfg.port, self.cfg.username, self.cfg.password)

    def _forget(self) -> None:
        with _COMMANDS_LOCK:
            if _COMMANDS.get(self._key) is self._cmd or self._cmd is None:
                _COMMANDS.pop(self._key, None)
        self._cmd = None
        # pyghmi keeps a session whose login failed (wrong password) as "initting" and hands it to the
        # next Command, which then only says "Session no longer connected": drop it so we log in anew
        try:
            from pyghmi.ipmi.private import session

            session.Session.initting_sessions.pop(
                (self.cfg.host, self.cfg.username, self.cfg.password, self.cfg.port, None), None)
        except (ImportError, AttributeError):
            pass

    def classify(self, exc: Exception) -> BmcError:
        msg = str(exc) or type(exc).__name__
        low = msg.lower()
        self._forget()  # whatever failed, the next call starts from a new login
        if "password" in low or "unauthorized name" in low or "unknown user" in low or "privilege" in low:
            return BmcError(f"BMC {self.address} refused user {self.cfg.username!r}: {msg}; check the IPMI "
                            "username and password (climc host-update HOST --ipmi-username U "
                            "--ipmi-password P)", "auth_failed")
        if "cipher" in low or "authentication algorithm" in low or "integrity" in low:
            return BmcError(f"BMC {self.address} refused the RMCP+ cipher suites we offer (17, then 3): {msg}; "
                            "enable cipher suite 3 or 17 on the BMC", "error")
        # pyghmi's login to a BMC that never answered raises IpmiException(None): no answer, no reason
        if low in ("none", "") or any(w in low for w in ("timeout", "no longer connected", "unable to establish",
                                                          "logged out")):
            msg = msg if low not in ("none", "") else "no answer to the login"
            return BmcError(f"BMC {self.address} did not answer ({msg}): check that it is powered and that the "
                            f"controller reaches UDP {self.cfg.port}", "unreachable")
        return BmcError(f"BMC {self.address}: {msg}", "error")

    def _session(self) -> Any:
        command, _ = pyghmi()
        with _COMMANDS_LOCK:
            cmd = _COMMANDS.get(self._key)
        if cmd is None:
            cmd = command.Command(bmc=self.cfg.host, port=self.cfg.port, userid=self.cfg.username,
                                  password=self.cfg.password)
            self._shim_fru(cmd)
            with _COMMANDS_LOCK:
                cmd = _COMMANDS.setdefault(self._key, cmd)
        self._cmd = cmd
        return cmd

    @staticmethod
    def _shim_fru(cmd: Any) -> None:
        """Some BMCs (ipmi_sim among them) answer a long FRU read with 0xC8 (request too long) where
        pyghmi only shrinks its chunk on 0xCA/0xC9: translate, so the inventory reads in smaller chunks."""
        raw = cmd.raw_command

        def patched(netfn: int, command: int, *a: Any, **kw: Any) -> Any:
            r = raw(netfn, command, *a, **kw)
            if netfn == 0x0A and command == _FRU_READ and isinstance(r, dict) and r.get("code") == _REQ_TOO_LONG:
                r["code"] = _CANNOT_RETURN
            return r

        cmd.raw_command = patched

    def _do(self, what: str, fn: Any, *, retry: bool = True, slow: bool = False) -> Any:
        _, exceptions = pyghmi()

        def run() -> Any:
            try:
                return fn(self._session())
            except (exceptions.PyghmiException, OSError) as exc:
                raise self.classify(exc) from None
            except BmcError:
                raise
            except Exception as exc:  # pyghmi failing inside itself (a session torn down mid-call): start over
                self._forget()
                raise BmcError(f"BMC {self.address}: the IPMI session failed ({type(exc).__name__}: {exc}); "
                               "try again", "timeout") from None

        return self.calls.call(what, run, retry=retry, slow=slow)

    # ---- power -----------------------------------------------------------------------------------
    def get_power_state(self) -> PowerState:
        r = self._do("a power status read", lambda c: c.get_power())
        return PowerState(r.get("powerstate", "unknown")) if r.get("powerstate") in ("on", "off") \
            else PowerState.UNKNOWN

    def set_power_state(self, action: str) -> PowerState:
        if action not in _POWER:
            raise BmcError(f"power action must be one of {', '.join(_POWER)}, got {action!r}")
        # on/off are idempotent (retried on no answer); a reset is not
        try:
            self._do(f"power {action}", lambda c: c.set_power(_POWER[action]), retry=action in ("on", "off"))
        except BmcError as exc:
            if action != "soft" or exc.status != "error":
                raise
            raise BmcError(f"BMC {self.address} refused a soft (ACPI) power off ({exc}): power off without "
                           "--soft instead", "error") from None
        if action in ("on", "off"):
            return await_power(self.get_power_state, action, self.cfg.timeout_s, 0.1)
        return self.get_power_state()

    # ---- management -----------------------------------------------------------------------------
    def set_boot_device(self, device: BootDevice, *, persistent: bool = False) -> None:
        self._do(f"a boot device set ({device.value})", lambda c: c.set_bootdev(_BOOTDEV[device], persist=persistent))

    def get_boot_device(self) -> str:
        r = self._do("a boot device read", lambda c: c.get_bootdev())
        return _BOOTDEV_BACK.get(str(r.get("bootdev")), str(r.get("bootdev") or "default"))

    # ---- inventory and sensors ------------------------------------------------------------------------
    def inventory(self) -> MachineInventory:
        items = self._do("an inventory read", lambda c: list(c.get_inventory()), slow=True)
        system: dict[str, Any] = {}
        cpus = mem_mb = 0
        macs: list[str] = []
        for name, data in items:
            if not isinstance(data, dict):
                continue
            if name == "System":
                system = data
            elif name.lower().startswith(("cpu", "processor")) and data.get("present", True):
                cpus += int(data.get("cores") or data.get("Cores") or 1)
            elif name.lower().startswith("dimm") and data.get("present", True):
                mem_mb += int(data.get("size") or data.get("Size") or 0)
            for k, v in data.items():
                if "mac" in str(k).lower() and isinstance(v, str) and v.count(":") == 5:
                    macs.append(v.lower())
        return MachineInventory(
            manufacturer=str(system.get("Manufacturer") or system.get("Board manufacturer") or ""),
            model=str(system.get("Product name") or system.get("Board product name") or ""),
            serial=str(system.get("Serial Number") or system.get("Chassis serial number") or ""),
            uuid=str(system.get("UUID") or ""), cpu_count=cpus, memory_mb=mem_mb, nic_macs=tuple(macs),
            firmware=str(system.get("firmware_version") or ""),
            extra={k: v for k, v in system.items() if isinstance(v, str | int | float)})

    def sensors(self) -> list[Sensor]:
        readings = self._do("a sensor read", lambda c: list(c.get_sensor_data()), slow=True)
        return [Sensor(name=str(r.name), value=r.value, unit=str(r.units or ""), health=_health(int(r.health or 0)),
                       states=tuple(str(s) for s in (r.states or ()))) for r in readings]

    def health(self) -> str:
        r = self._do("a health read", lambda c: c.get_health(), slow=True)
        return health_of([_health(int(r.get("health") or 0))])

    # ---- console ----------------------------------------------------------------------------------
    def sol(self) -> SolStream:
        """A serial-over-LAN session to the machine's serial port (``BmcError`` saying why not)."""
        stream = SolStream(self)
        try:
            # up to two activation windows (SolStream.open) after the last session's logout: a slow call
            self.calls.call("an SOL activation", stream.open, retry=False, slow=True)
        except BmcError:
            stream.close()
            raise
        return stream

    def close(self) -> None:
        # no logout: pyghmi shares one session per (BMC, user, password) across Command objects, and
        # a logout here would break another user's call in flight (pyghmi then fails inside itself)
        self._cmd = None
