"""The agent's config file: ``<agent data dir>/agent.json`` (mode 0600: it holds the agent's password).

``ocadm join`` writes it; ``ocadm agent`` reads it; ``ocadm serve --with-agent`` writes one for the
in-process agent under ``<data_dir>/agent``. Unknown keys are refused (a typo must not be ignored).
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.errors import InputParameterError

CONFIG_NAME = "agent.json"
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


@dataclass(frozen=True)
class WireConfig:
    """How a region wire reaches this host: a bridge (made if missing), maybe an uplink NIC.

    ``address`` (``10.0.0.1/24``) is put on the bridge, so the DHCP server has an address to
    answer from; ``dhcp_server_ip`` names one explicitly instead (the bridge then needs none).
    """

    wire: str
    bridge: str
    uplink: str | None = None
    address: str | None = None
    dhcp_server_ip: str | None = None

    def __post_init__(self) -> None:
        if not self.wire:
            raise InputParameterError("wires: each needs a wire name")
        for what, v in (("bridge", self.bridge), ("uplink", self.uplink)):
            if v is not None and not _IFNAME.match(v):
                raise InputParameterError(f"wire {self.wire}: bad {what} name {v!r}")
        if self.address is not None:
            try:
                ipaddress.IPv4Interface(self.address)
            except ValueError:
                raise InputParameterError(f"wire {self.wire}: bad address {self.address!r} (a.b.c.d/len)") from None
        if self.dhcp_server_ip is not None:
            try:
                ipaddress.IPv4Address(self.dhcp_server_ip)
            except ValueError:
                raise InputParameterError(f"wire {self.wire}: bad dhcp_server_ip {self.dhcp_server_ip!r}") from None


def check_migration(uri: str, address: str) -> None:
    """``migrate_uri`` / ``migrate_address`` of a config (``ocadm join`` checks them before it spends a token)."""
    if uri and not re.match(r"^[a-z][a-z0-9+]*://\S*$", uri):
        raise InputParameterError(f"migrate_uri: a libvirt URI such as qemu+tcp://HOST/system, not {uri!r}")
    if address and not re.match(r"^(tcp|rdma|unix)://\S+$", address):
        raise InputParameterError(f"migrate_address: tcp://HOST[:PORT], not {address!r}")


def metrics_address(listen: str) -> tuple[str, int]:
    """``metrics_listen`` ("127.0.0.1:9101", "[::1]:9101") as (ip, port)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        if not 0 <= int(port) < 65536:
            raise ValueError(port)
    except ValueError:
        raise InputParameterError(f"metrics_listen: IP:PORT (e.g. 127.0.0.1:9101), not {listen!r}") from None
    return host, int(port)


@dataclass(frozen=True)
class AgentConfig:
    auth_url: str
    username: str
    password: str = field(repr=False)
    host_id: str
    host_name: str
    project_name: str = "host-agents"
    domain_name: str = "Default"
    region: str = ""
    data_dir: str = "/var/lib/cloudpods-one-agent"
    driver: str = "kvm"  # the hosted driver, by its name in drivers/registry.py
    libvirt_uri: str = "qemu:///system"
    # live migration into this host: the libvirt URI other hosts reach this host's libvirtd by
    # (qemu+tcp://10.0.0.2/system; "" = this host takes no live migrations), and the address qemu
    # streams the guest to (tcp://10.0.0.2; "" = libvirt's choice, the host name)
    migrate_uri: str = ""
    migrate_address: str = ""
    domain_type: str = "auto"  # auto | kvm | qemu | test
    network_mode: str = "host"  # host: bridges + DHCP (root); none: simulated (test:///)
    wires: tuple[WireConfig, ...] = ()
    storage_name: str = ""  # default <host_name>-local
    storage_capacity_mb: int = 0  # 0: the size of data_dir's filesystem (set it for a simulated host)
    cpu_cmtbound: float = 8.0
    mem_cmtbound: float = 1.0
    ping_interval_s: float = 60.0
    sync_interval_s: float = 60.0
    poll_wait_s: int = 20
    workers: int = 4
    stop_timeout_s: float = 30.0
    backoff_max_s: float = 60.0  # longest wait between retries after failures (auth, unreachable)
    # guests' VNC servers listen here, password-less: loopback, or the management address where the
    # agent's console proxy runs elsewhere (never an address guests' users can reach)
    console_listen: str = "127.0.0.1"
    # tests on libvirt's test:/// only: a peer standing in for every guest's console,
    # {"vnc": "127.0.0.1:5907", "serial": "/dev/pts/7" or "host:port"} (a simulated guest has none)
    console_standin: dict[str, str] = field(default_factory=dict)
    # security groups: auto = nftables with network_mode host, none elsewhere; nft = always (e.g. a
    # simulated hypervisor whose guest ports are real veths); none = never (the host reports it)
    firewall: str = "auto"
    firewall_table: str = "cloudpods_one"  # the nftables tables (families bridge + inet) the agent owns
    firewall_netns: str = ""  # apply in this network namespace (the guests' bridge lives there)
    # Prometheus /metrics of this host and its guests (core/agent/metrics.py): "IP:PORT", "" = off.
    # No token on it (the agent validates none): bind loopback or the management network only.
    metrics_listen: str = ""

    def __post_init__(self) -> None:
        if self.domain_type not in ("auto", "kvm", "qemu", "test"):
            raise InputParameterError(f"domain_type: must be auto, kvm, qemu or test, not {self.domain_type!r}")
        if self.network_mode not in ("host", "none"):
            raise InputParameterError(f"network_mode: must be host or none, not {self.network_mode!r}")
        if not os.path.isabs(self.data_dir):
            raise InputParameterError(f"data_dir: must be an absolute path, got {self.data_dir!r}")
        for name in ("ping_interval_s", "sync_interval_s", "stop_timeout_s", "backoff_max_s"):
            if not 0 < float(getattr(self, name)) <= 3600:
                raise InputParameterError(f"{name}: must be in (0, 3600]")
        if not 0 <= self.poll_wait_s <= 60:
            raise InputParameterError("poll_wait_s: must be 0..60")
        check_migration(self.migrate_uri, self.migrate_address)
        if self.firewall not in ("auto", "nft", "none"):
            raise InputParameterError(f"firewall: must be auto, nft or none, not {self.firewall!r}")
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", self.firewall_table):
            raise InputParameterError(f"firewall_table: bad nftables table name {self.firewall_table!r}")
        if self.firewall_netns and not re.match(r"^[A-Za-z0-9_.-]{1,64}$", self.firewall_netns):
            raise InputParameterError(f"firewall_netns: bad network namespace name {self.firewall_netns!r}")
        if not 1 <= self.workers <= 64:
            raise InputParameterError("workers: must be 1..64")
        try:
            ipaddress.ip_address(self.console_listen)
        except ValueError:
            raise InputParameterError(f"console_listen: must be an IP address, got {self.console_listen!r}") from None
        if self.metrics_listen:
            metrics_address(self.metrics_listen)
        if not isinstance(self.console_standin, dict) or \
                not set(self.console_standin) <= {"vnc", "serial"}:
            raise InputParameterError("console_standin: expected {\"vnc\": \"host:port\", \"serial\": ...}")
        if self.console_standin and not self.libvirt_uri.startswith("test:"):
            raise InputParameterError("console_standin: only for a simulated host (libvirt test:///); "
                                      "real guests have their own consoles")
        object.__setattr__(self, "wires", tuple(w if isinstance(w, WireConfig) else WireConfig(**w)
                                                for w in self.wires))

    @property
    def instances_dir(self) -> str:
        return os.path.join(self.data_dir, "instances")

    @property
    def image_dir(self) -> str:
        return os.path.join(self.data_dir, "images")

    @property
    def storage(self) -> str:
        return self.storage_name or f"{self.host_name}-local"

    def libvirt_domain_type(self) -> str:
        if self.domain_type == "auto" and self.libvirt_uri.startswith("test:"):
            return "test"
        return self.domain_type

    def bridge_of(self, wire_id: str, wire_name: str = "") -> WireConfig | None:
        for w in self.wires:
            if w.wire in (wire_id, wire_name):
                return w
        return None

    def to_json(self) -> str:
        data = asdict(self)
        data["wires"] = [asdict(w) for w in self.wires]
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputParameterError(f"agent config: unknown key(s) {', '.join(unknown)}")
        missing = sorted(k for k in ("auth_url", "username", "password", "host_id", "host_name") if not data.get(k))
        if missing:
            raise InputParameterError(f"agent config: missing {', '.join(missing)} (run `ocadm join`)")
        try:
            return cls(**data)
        except TypeError as e:
            raise InputParameterError(f"agent config: {e}") from None

    @classmethod
    def load(cls, data_dir: Path) -> AgentConfig:
        path = data_dir / CONFIG_NAME
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputParameterError(f"no agent config at {path}: run `ocadm join --controller URL --token T` "
                                      "first") from None
        except (OSError, ValueError) as e:
            raise InputParameterError(f"cannot read {path}: {e}") from None
        if not isinstance(raw, dict):
            raise InputParameterError(f"{path}: expected a JSON object")
        return cls.from_dict({"data_dir": str(data_dir), **raw})

    def save(self) -> Path:
        d = Path(self.data_dir)
        d.mkdir(parents=True, exist_ok=True)
        path = d / CONFIG_NAME
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.to_json())
        os.replace(tmp, path)
        return path
