"""One logged-in pyvmomi session to a vCenter or a standalone ESXi, and the calls every module needs.

    cfg = EsxiConfig.parse({"host": "vc.example", "username": "admin", "password": "...", "insecure": True})
    with Session(cfg) as s:
        s.content.about.fullName           # 'VMware vCenter Server 6.5.0 build-5973321'
        s.wait(vm.PowerOnVM_Task())        # a vSphere task, to its end (its fault as HypervisorError)

A session that expired (vCenter drops idle sessions after ~30 min) is logged in again once, on
the first call that says NotAuthenticated (``call``). Errors name the fix: a wrong password, an
unreachable address or an untrusted certificate each get one readable line.
"""
from __future__ import annotations

import http.client
import logging
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from drivers.base import DriverError, HypervisorError, InvalidSpec

log = logging.getLogger(__name__)

T = TypeVar("T")


class EsxiLoginError(HypervisorError):
    """The vCenter/ESXi refused the credentials."""


class EsxiUnreachable(HypervisorError):
    """No vSphere API at the configured address (network, TLS, or not a vSphere endpoint)."""


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise InvalidSpec(f"{key}: expected true or false, got {value!r}")


@dataclass(frozen=True)
class EsxiConfig:
    """Where and as whom to log in, and which parts of the inventory a host of ours is.

    ``esxi_host``: the HostSystem (name or managed object id) an executor host drives; optional
    when the endpoint has exactly one. ``datastore`` / ``network``: defaults for new VMs (else
    the host's datastore with the most free space, and the port group a NIC's wire names).
    """

    host: str
    username: str
    password: str
    port: int = 443
    insecure: bool = False
    esxi_host: str = ""
    datacenter: str = ""
    datastore: str = ""
    network: str = ""
    task_timeout_s: float = 600.0
    http_timeout_s: float = 60.0
    manager_id: str = ""  # a synced host's cloud provider: servers it imported have ids derived from it

    KEYS = ("host", "port", "username", "password", "insecure", "esxi_host", "datacenter", "datastore", "network",
            "task_timeout_s", "http_timeout_s", "manager_id")

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> EsxiConfig:
        unknown = sorted(set(options) - set(cls.KEYS) - {"uri", "domain_type", "stop_timeout_s"})
        if unknown:
            raise InvalidSpec(f"esxi config: unknown key(s) {', '.join(unknown)} (known: {', '.join(cls.KEYS)})")
        host = str(options.get("host") or options.get("uri") or "").strip()
        if host.startswith(("https://", "http://")):
            host = host.split("://", 1)[1]
        host = host.split("/", 1)[0]
        port: Any = options.get("port") or 443
        if ":" in host and not host.startswith("["):
            host, _, p = host.rpartition(":")
            port = options.get("port") or p
        missing = [k for k, v in (("host", host), ("username", options.get("username")),
                                  ("password", options.get("password"))) if not v]
        if missing:
            raise InvalidSpec(f"esxi config: {', '.join(missing)} required")
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise InvalidSpec(f"esxi config: port must be a number, got {port!r}") from None
        if not 0 < port < 65536:
            raise InvalidSpec(f"esxi config: port {port} out of range")
        try:
            task_timeout = float(options.get("task_timeout_s") or 600)
            http_timeout = float(options.get("http_timeout_s") or 60)
        except (TypeError, ValueError):
            raise InvalidSpec("esxi config: task_timeout_s and http_timeout_s must be numbers") from None
        return cls(host=host, port=port, username=str(options["username"]), password=str(options["password"]),
                   insecure=_bool(options.get("insecure", False), "insecure"),
                   esxi_host=str(options.get("esxi_host") or ""), datacenter=str(options.get("datacenter") or ""),
                   datastore=str(options.get("datastore") or ""), network=str(options.get("network") or ""),
                   task_timeout_s=max(1.0, task_timeout), http_timeout_s=max(1.0, http_timeout),
                   manager_id=str(options.get("manager_id") or ""))

    @classmethod
    def from_account(cls, config: Mapping[str, Any]) -> EsxiConfig:
        """A cloud account's config (``access_url``, ``account``, ``secret``, ``options``) and, for a
        synced host, the host's managed object id (``host``); the account options may carry the
        keys of ``KEYS`` (``insecure``, ``datacenter``, ``datastore``, ``network``, timeouts)."""
        options = dict(config.get("options") or {})
        url = str(config.get("access_url") or "")
        parts = urllib.parse.urlsplit(url if "://" in url else f"https://{url}")
        flat: dict[str, Any] = {k: v for k, v in options.items() if k in cls.KEYS and k not in
                                ("host", "username", "password")}
        flat.update(host=parts.hostname or "", username=str(config.get("account") or ""),
                    password=str(config.get("secret") or ""))
        if parts.port:
            flat["port"] = parts.port
        if config.get("host"):
            flat["esxi_host"] = str(config["host"])
        if config.get("manager_id"):
            flat["manager_id"] = str(config["manager_id"])
        return cls.parse(flat)

    @property
    def endpoint(self) -> str:
        return f"https://{self.host}:{self.port}/sdk"

    def __repr__(self) -> str:  # never the password
        return f"EsxiConfig(endpoint={self.endpoint!r}, username={self.username!r}, esxi_host={self.esxi_host!r})"


def fault_text(exc: Any) -> str:
    """A vSphere fault as one line: its message, else its type."""
    inner = getattr(exc, "fault", None)  # a LocalizedMethodFault (a task's error, a missingSet entry)
    if inner is not None and not isinstance(exc, BaseException):
        text = fault_text(inner)
        loc = getattr(exc, "localizedMessage", None) or ""
        return f"{text} ({loc})" if loc and loc not in text else text
    msg = getattr(exc, "msg", None) or getattr(exc, "localizedMessage", None) or ""
    if not msg and isinstance(exc, vmodl.MethodFault):
        for lm in getattr(exc, "faultMessage", None) or []:
            msg = getattr(lm, "message", "") or msg
    name = type(exc).__name__.rsplit(".", 1)[-1]
    return f"{name}: {msg}" if msg else (name or str(exc))


class Session:
    """A pyvmomi ServiceInstance with re-login, task waiting and one-line errors."""

    def __init__(self, cfg: EsxiConfig) -> None:
        self.cfg = cfg
        self._si: Any = None
        self._lock = threading.Lock()

    # --- connection ----------------------------------------------------------------------------
    def _connect(self) -> Any:
        cfg = self.cfg
        ctx = ssl._create_unverified_context() if cfg.insecure else ssl.create_default_context()
        try:
            return SmartConnect(host=cfg.host, port=cfg.port, user=cfg.username, pwd=cfg.password, sslContext=ctx,
                                httpConnectionTimeout=cfg.http_timeout_s)
        except vim.fault.InvalidLogin:
            raise EsxiLoginError(f"esxi: {cfg.host}:{cfg.port} refused the login of {cfg.username!r}: "
                                 "wrong username or password") from None
        except ssl.SSLCertVerificationError as exc:
            raise EsxiUnreachable(f"esxi: the certificate of {cfg.host}:{cfg.port} is not trusted "
                                  f"({exc.verify_message}); install its CA, or set insecure=true for a "
                                  "self-signed certificate") from None
        except (ssl.SSLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise EsxiUnreachable(f"esxi: cannot reach {cfg.endpoint}: {reason} (check host and port)") from None
        except vmodl.MethodFault as exc:
            raise HypervisorError(f"esxi: login to {cfg.endpoint} failed: {fault_text(exc)}") from None
        except Exception as exc:  # pyvmomi raises plain exceptions for a non-vSphere endpoint
            raise EsxiUnreachable(f"esxi: {cfg.endpoint} is not a vSphere API: {exc}") from None

    @property
    def si(self) -> Any:
        with self._lock:
            if self._si is None:
                self._si = self._connect()
            return self._si

    @property
    def content(self) -> Any:
        return self.si.RetrieveContent()

    def relogin(self, stale: Any) -> None:
        with self._lock:
            if self._si is stale:
                self._si = None

    def close(self) -> None:
        with self._lock:
            si, self._si = self._si, None
        if si is not None:
            try:
                Disconnect(si)
            except Exception:  # logging out of a dead session: nothing to do
                pass

    def __enter__(self) -> Session:
        _ = self.si
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- calls -----------------------------------------------------------------------------------
    def call(self, fn: Callable[[Any], T], what: str) -> T:
        """``fn(service_instance)`` with one re-login when the session expired; faults as HypervisorError."""
        for attempt in (1, 2):
            si = self.si
            try:
                return fn(si)
            except vim.fault.NotAuthenticated:
                if attempt == 2:
                    raise HypervisorError(f"esxi: {what}: not authenticated after logging in again") from None
                log.info("esxi session to %s expired: logging in again", self.cfg.endpoint)
                self.relogin(si)
            except DriverError:
                raise
            except vmodl.MethodFault as exc:
                raise HypervisorError(f"esxi: {what}: {fault_text(exc)}") from None
            except (OSError, http.client.HTTPException) as exc:
                if attempt == 2:
                    raise EsxiUnreachable(f"esxi: {what}: {self.cfg.endpoint}: {exc}") from None
                self.relogin(si)  # a dropped connection: reconnect once
        raise AssertionError("unreachable")

    def wait(self, task: Any, what: str, timeout: float | None = None) -> Any:
        """Wait for a vSphere task; its result, or HypervisorError with its fault (polls, backing off).

        Reads only ``info.state/error/result`` through the property collector: a whole TaskInfo
        carries fields (the task's entity) that some servers fill with objects pyvmomi rejects."""
        limit = timeout or self.cfg.task_timeout_s
        end = time.monotonic() + limit
        delay = 0.01
        pc = self.si.RetrieveContent().propertyCollector
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=task, skip=False)],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.Task,
                                                                pathSet=["info.state", "info.error", "info.result"])])
        while True:
            got: dict[str, Any] = {}
            for oc in pc.RetrieveContents([spec]) or []:
                got.update({p.name: p.val for p in oc.propSet or []})
            state = got.get("info.state")
            if state == vim.TaskInfo.State.success:
                return got.get("info.result")
            if state == vim.TaskInfo.State.error:
                err = got.get("info.error")
                raise HypervisorError(f"esxi: {what}: {fault_text(err) if err is not None else 'task failed'}")
            if time.monotonic() > end:
                raise HypervisorError(f"esxi: {what}: still running after {limit:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def run_task(self, start: Callable[[Any], Any], what: str, timeout: float | None = None) -> Any:
        """Start a task with ``start(si)`` and wait for it (both under ``call``'s error handling)."""
        return self.call(lambda si: self.wait(start(si), what, timeout), what)
