"""One settings object for the controller, agent and operator commands.

Sources, later wins: built-in defaults, ``<data_dir>/config.toml`` (written by ``ocadm init``),
environment variables ``CLOUDPODS_<FIELD>`` (e.g. ``CLOUDPODS_PORT=30400``).
The file is written mode 0600 because ``db_url`` may carry a password.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from core.errors import InputParameterError

CONFIG_FILE = "config.toml"
DEFAULT_PORT = 30300


def default_data_dir() -> Path:
    env = os.environ.get("CLOUDPODS_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cloudpods-one"


@dataclass
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    listen_host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    public_host: str = "127.0.0.1"
    db_url: str = ""
    log_level: str = "info"
    region_id: str = "region0"
    token_lifetime_s: int = 3600
    max_body_bytes: int = 8 * 1024 * 1024
    lockout_failures: int = 6
    lockout_seconds: int = 1800
    password_min_length: int = 6  # password policy for users and servers (Cloudpods' default)
    # this replica's own base URL for host agents' console connections (each replica its own, e.g.
    # http://<pod IP>:30300 from CLOUDPODS_CONSOLE_RELAY_URL): a console session lives on the replica
    # the browser reached, so the agent must dial that one. Empty: agents dial their configured
    # controller URL (right for one replica; see core/console/relay.py for several)
    console_relay_url: str = ""
    # bare-metal deploys: the controller's PXE boot network (core/agent/pxe.py); empty interface = none
    baremetal_pxe_interface: str = ""
    baremetal_deploy_kernel: str = ""  # scripts/build-deploy-ramdisk.sh makes deploy.kernel + deploy.initrd
    baremetal_deploy_ramdisk: str = ""
    baremetal_pxe_http_port: int = 0  # 0: any free port (the URLs the machines get name it)
    baremetal_pxe_range: str = ""  # FIRST-LAST deploy addresses; default: the interface subnet's upper half
    baremetal_tftp_root: str = ""  # holds undionly.kpxe for legacy (non-iPXE) PXE ROMs
    # GET /metrics without a token (for a Prometheus on a private network; core/metrics/routes.py)
    metrics_open: bool = False
    # "IP:PORT": a second listener serving only GET /metrics, without a token (core/metrics/listener.py)
    metrics_listen: str = ""
    # ---- background work (core/region/background.py, core/tasks/periodic.py) ----
    task_owner: str = ""  # this replica's name on the tasks it claims; empty: host:port
    task_workers: int = 2  # task worker threads (0: this replica runs no tasks)
    task_lease_s: float = 60.0  # a replica that died mid-stage keeps its tasks this long
    executor_threads: int = 2  # threads running work items of hosts driven from the controller
    executor_heartbeat_s: float = 30.0  # how often a running work item's lease is renewed
    cloudsync_threads: int = 1  # cloud account syncs at once
    cloudsync_poll_s: float = 2.0  # an idle sync thread looks for queued accounts this often
    # listing threads per sync of a provider that lists its regions and kinds side by side (AWS); 0: off
    cloudsync_list_threads: int = 4
    # periodic jobs: switch and interval
    job_hosts_offline: bool = True
    job_hosts_offline_interval_s: float = 30.0
    job_cloudsync: bool = True  # off: accounts sync only on demand
    job_cloudsync_interval_s: float = 60.0
    job_purge: bool = True  # the recycle bin's purge
    job_alerts: bool = True  # the alert evaluator and its notifications
    job_alerts_interval_s: float = 30.0
    host_offline_s: float = 180.0  # a host not heard from this long goes offline (agents ping every 60 s)
    work_item_timeout_s: float = 900.0  # a fetched (acknowledged), never reported work item is queued again
    work_item_ack_s: float = 10.0  # a handed-out item the agent did not acknowledge this long goes out again
    pending_delete_s: float = 3 * 24 * 3600.0  # servers stay in the recycle bin this long

    # ---- derived -------------------------------------------------------------
    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'cloudpods.db'}"

    @property
    def public_url(self) -> str:
        return f"http://{self.public_host}:{self.port}"

    @property
    def key_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_FILE

    # ---- loading / saving ----------------------------------------------------
    @classmethod
    def load(cls, data_dir: Path | str | None = None, **overrides: Any) -> Settings:
        d = Path(data_dir).expanduser() if data_dir else default_data_dir()
        values: dict[str, Any] = {}
        path = d / CONFIG_FILE
        if path.exists():
            try:
                values.update(tomllib.loads(path.read_text()))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                raise InputParameterError(f"cannot parse {path}: {e}") from e
        for f in fields(cls):
            env = os.environ.get(f"CLOUDPODS_{f.name.upper()}")
            if env is not None and f.name != "data_dir":
                values[f.name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["data_dir"] = d
        return cls._from_values(values)

    @classmethod
    def _from_values(cls, values: dict[str, Any]) -> Settings:
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, raw in values.items():
            if name not in known:
                continue  # tolerate keys from newer versions
            default = known[name].default
            try:
                if name == "data_dir":
                    kwargs[name] = Path(raw).expanduser()
                elif isinstance(default, bool):
                    kwargs[name] = raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on")
                elif isinstance(default, int):
                    kwargs[name] = int(raw)
                elif isinstance(default, float):
                    kwargs[name] = float(raw)
                else:
                    kwargs[name] = str(raw)
            except (TypeError, ValueError) as e:
                raise InputParameterError(f"setting {name}: invalid value {raw!r}") from e
        s = cls(**kwargs)
        if not 0 < s.port < 65536:
            raise InputParameterError(f"setting port: {s.port} is not a TCP port")
        if not 1 <= s.password_min_length <= 128:
            raise InputParameterError(f"setting password_min_length: {s.password_min_length} is not in 1..128")
        return s

    def save(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lines = ["# cloudpods-one controller settings (written by `ocadm init`)"]
        for f in fields(self):
            if f.name == "data_dir":
                continue
            lines.append(f"{f.name} = {toml_value(getattr(self, f.name))}")
        write_private(self.config_path, "\n".join(lines) + "\n")
        return self.config_path

    def redacted(self) -> dict[str, Any]:
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}
        out["db_url"] = redact_url(self.database_url)
        return out


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def redact_url(url: str) -> str:
    """Hide the password of a database URL for display and logs."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url


def write_private(path: Path, text: str | bytes) -> None:
    """Write a secret file atomically with mode 0600 from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode() if isinstance(text, str) else text)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
