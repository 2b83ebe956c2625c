"""What both BMC protocols share: the config they are built from, bounded calls, error wording.

Config (a host's ``driver_config``, stored encrypted by the controller)::

    {"protocol": "ipmi", "ipmi_ip": "10.0.0.5", "ipmi_port": 623,
     "ipmi_username": "admin", "ipmi_password": "..."}
    {"protocol": "redfish", "redfish_url": "https://10.0.0.5", "ipmi_username": ..., "ipmi_password": ...,
     "redfish_system": "<system id, optional>", "verify_tls": false}

``timeout_s`` (default 5) bounds every BMC call; ``retries`` (default 1) repeats a read that got
no answer. A BMC that never answers costs at most ``timeout_s * (retries + 1)`` per read.
"""
from __future__ import annotations

import ipaddress
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from drivers.base import BmcError, DriverUnavailable, InvalidSpec, PowerState

T = TypeVar("T")
PROTOCOLS = ("ipmi", "redfish")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")

# one lock per BMC in this process: two drivers of one machine (a request's, the heartbeat's) take turns
_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
SLOW = 6  # inventory reads walk the FRU in small chunks: that many times the per-call timeout

# one pool for every BMC call of this process: a call that outlives its deadline keeps its thread
# until the SDK gives up, but never its caller (and never another BMC's caller)
_POOL = ThreadPoolExecutor(max_workers=64, thread_name_prefix="bmc")


@dataclass(frozen=True)
class BmcConfig:
    protocol: str
    host: str = ""
    port: int = 623
    url: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    system: str = ""
    verify_tls: bool = True
    timeout_s: float = 5.0
    retries: int = 1

    @property
    def address(self) -> str:
        return self.url if self.protocol == "redfish" else f"{self.host}:{self.port}"

    def public(self) -> dict[str, Any]:
        """What may be shown of the config: never the password."""
        out: dict[str, Any] = {"protocol": self.protocol, "ip": self.host, "port": self.port, "username": self.username}
        if self.protocol == "redfish":
            out.update(url=self.url, system=self.system)
        return out


def _num(cfg: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    raw = cfg.get(key, default)
    try:
        v = float(raw)
    except (TypeError, ValueError):
        raise InvalidSpec(f"{key}: must be a number, got {raw!r}") from None
    if not lo <= v <= hi:
        raise InvalidSpec(f"{key}: must be between {lo:g} and {hi:g}, got {v:g}")
    return v


def parse_config(cfg: dict[str, Any]) -> BmcConfig:
    """The BMC config from a host's driver config; ``InvalidSpec`` naming the field to fix."""
    protocol = str(cfg.get("protocol") or ("redfish" if cfg.get("redfish_url") else "ipmi")).lower()
    if protocol not in PROTOCOLS:
        raise InvalidSpec(f"protocol: must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    username = str(cfg.get("ipmi_username") or cfg.get("username") or "")
    password = str(cfg.get("ipmi_password") or cfg.get("password") or "")
    if not username:
        raise InvalidSpec("ipmi_username: required (the BMC user)")
    if not password:
        raise InvalidSpec("ipmi_password: required (the BMC user's password)")
    if len(username) > 16 and protocol == "ipmi":
        raise InvalidSpec("ipmi_username: IPMI user names are at most 16 characters")
    if len(password) > 20 and protocol == "ipmi":
        raise InvalidSpec("ipmi_password: IPMI 2.0 passwords are at most 20 characters")
    timeout = _num(cfg, "timeout_s", 5.0, 0.5, 120.0)
    retries = int(_num(cfg, "retries", 1, 0, 5))
    if protocol == "ipmi":
        host = str(cfg.get("ipmi_ip") or cfg.get("host") or "")
        if not host:
            raise InvalidSpec("ipmi_ip: required (the BMC's address)")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not _HOSTNAME.match(host):
                raise InvalidSpec(f"ipmi_ip: not an IP address or host name: {host!r}") from None
        port = int(_num(cfg, "ipmi_port", 623, 1, 65535))
        return BmcConfig("ipmi", host=host, port=port, username=username, password=password, timeout_s=timeout,
                         retries=retries)
    url = str(cfg.get("redfish_url") or "").rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidSpec(f"redfish_url: must be http(s)://HOST[:PORT], got {url!r}")
    url = f"{parts.scheme}://{parts.netloc}"
    verify = cfg.get("verify_tls", True)
    if isinstance(verify, str):
        verify = verify.lower() not in ("false", "0", "no")
    return BmcConfig("redfish", host=parts.hostname, port=parts.port or (443 if parts.scheme == "https" else 80),
                     url=url, username=username, password=password, system=str(cfg.get("redfish_system") or ""),
                     verify_tls=bool(verify), timeout_s=timeout, retries=retries)


def await_power(read: Callable[[], PowerState], want: str, timeout_s: float, step_s: float) -> PowerState:
    """After a power action: the state ``read`` returns once it is ``want`` (on/off), polled every
    ``step_s``; after ``timeout_s`` whatever it reads then."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        st = read()
        if st.value == want:
            return st
        time.sleep(step_s)
    return read()


class Bounded:
    """One BMC's calls: serialized (a BMC handles one session poorly in parallel), each with a
    deadline; reads retried when the BMC did not answer."""

    def __init__(self, cfg: BmcConfig, on_lost: Callable[[], None]) -> None:
        self.cfg = cfg
        with _LOCKS_GUARD:
            self._lock = _LOCKS.setdefault((cfg.protocol, cfg.address, cfg.username), threading.Lock())
        self._on_lost = on_lost  # forget the session: the next call logs in again

    def call(self, what: str, fn: Callable[[], T], *, retry: bool = True, slow: bool = False) -> T:
        attempts = 1 + (self.cfg.retries if retry else 0)
        last: BmcError | None = None
        for _ in range(attempts):
            try:
                return self._once(what, fn, self.cfg.timeout_s * (SLOW if slow else 1))
            except BmcError as exc:
                last = exc
                if exc.status not in ("unreachable", "timeout"):
                    raise
                self._on_lost()
        assert last is not None
        raise last

    def _once(self, what: str, fn: Callable[[], T], deadline: float) -> T:
        t0 = time.monotonic()
        if not self._lock.acquire(timeout=deadline):
            raise BmcError(f"BMC {self.cfg.address} is still busy with an earlier call that did not answer; "
                           "try again shortly", "unreachable")
        try:
            fut = _POOL.submit(fn)
            try:
                return fut.result(timeout=max(0.1, deadline - (time.monotonic() - t0)))
            except FutureTimeout:
                self._on_lost()
                raise BmcError(f"BMC {self.cfg.address} did not answer {what} within {deadline:g} s: check that it "
                               f"is powered and that the controller reaches it ({self._transport()})",
                               "unreachable") from None
        finally:
            self._lock.release()

    def _transport(self) -> str:
        return f"UDP {self.cfg.port}" if self.cfg.protocol == "ipmi" else self.cfg.url


def health_of(states: list[str]) -> str:
    """The worst of ok/warning/critical/unknown."""
    order = ["ok", "unknown", "warning", "critical"]
    return max(states, key=order.index) if states else "ok"


def pyghmi() -> Any:
    """pyghmi's ``command`` and ``exceptions`` modules (IPMI and its serial-over-LAN), or DriverUnavailable."""
    try:
        from pyghmi import exceptions
        from pyghmi.ipmi import command
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("pyghmi"):
            raise DriverUnavailable("baremetal needs pyghmi for IPMI (pip install 'cloudpods-one[baremetal]')") \
                from exc
        raise
    return command, exceptions
