"""ocadm install-service: systemd units for the controller and the host agent.

The controller runs as an unprivileged system user inside a tight sandbox (it needs a port, its
data dir and the database). The agent runs as root because it creates bridges and taps, serves
DHCP and talks to libvirtd's root socket; it keeps the hardening that does not get in the way of
that, and each relaxed option says why.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click

UNIT_DIR = Path("/etc/systemd/system")
ROLES = ("controller", "agent")
UNIT_NAMES = {"controller": "cloudpods-controller.service", "agent": "cloudpods-agent.service"}
DEFAULT_DATA = {"controller": Path("/var/lib/cloudpods-one"), "agent": Path("/var/lib/cloudpods-one-agent")}
DEFAULT_USER = "cloudpods"

CONTROLLER_HARDENING = """\
# --- sandbox: the controller needs its data dir, the network and nothing else ---
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
# a filtered call fails with EPERM instead of killing the process with SIGSYS
SystemCallErrorNumber=EPERM
# not MemoryDenyWriteExecute: libffi (cffi) closures may need writable+executable pages
"""

AGENT_HARDENING = """\
# --- sandbox: root, because the agent creates bridges/taps (CAP_NET_ADMIN), serves DHCP
# (CAP_NET_RAW, port 67) and uses libvirtd's root socket; the rest stays closed ---
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE CAP_DAC_OVERRIDE CAP_CHOWN CAP_FOWNER CAP_KILL
NoNewPrivileges=yes
# "full", not "strict": image caches and disks live under paths the operator chooses
ProtectSystem=full
ProtectHome=yes
PrivateTmp=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
# not ProtectKernelTunables/ProtectKernelModules: bridge sysctls and the 8021q module for VLANs
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
"""


@dataclass
class UnitSpec:
    role: str
    command: list[str]  # how to run ocadm (the binary, a venv script, or python -m ocadm)
    data_dir: Path
    user: str = DEFAULT_USER
    port: int | None = None  # the controller's port, when known (for CAP_NET_BIND_SERVICE below 1024)


def ocadm_command() -> list[str]:
    """The command that runs this very ocadm: the frozen binary, the `ocadm` on PATH, or python -m."""
    if getattr(sys, "frozen", False):
        return [os.path.realpath(sys.executable), "ocadm"]
    beside = Path(sys.executable).parent / "ocadm"  # the venv's script, even when it is not on PATH
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("ocadm")
    if found:
        return [os.path.abspath(found)]
    return [os.path.realpath(sys.executable), "-m", "ocadm"]


def _exec(words: list[str]) -> str:
    # systemd splits ExecStart like a shell would; quote anything that needs it
    return " ".join(shlex.quote(w) for w in words)


def _state_dir(data_dir: Path) -> str | None:
    """systemd's StateDirectory= name when the data dir is under /var/lib, else None."""
    try:
        rel = data_dir.relative_to("/var/lib")
    except ValueError:
        return None
    return str(rel) if str(rel) not in ("", ".") else None


def render_unit(spec: UnitSpec) -> str:
    if spec.role not in ROLES:
        raise click.BadParameter(f"role must be one of {', '.join(ROLES)}")
    d = str(spec.data_dir)
    state = _state_dir(spec.data_dir)
    storage = (f"StateDirectory={state}\nStateDirectoryMode=0700\n" if state
               else f"ReadWritePaths={shlex.quote(d)}\n")
    if spec.role == "controller":
        caps = "CAP_NET_BIND_SERVICE" if spec.port is not None and spec.port < 1024 else ""
        return f"""\
# {UNIT_NAMES['controller']} — written by `ocadm install-service controller`
[Unit]
Description=cloudpods-one controller (identity, compute, scheduler and image services on one port)
After=network-online.target postgresql.service mariadb.service
Wants=network-online.target

[Service]
Type=exec
User={spec.user}
Group={spec.user}
Environment=CLOUDPODS_DATA_DIR={d}
ExecStart={_exec([*spec.command, 'serve', '--data-dir', d])}
Restart=on-failure
RestartSec=3
TimeoutStopSec=20
UMask=0077
LimitNOFILE=65536
{storage}CapabilityBoundingSet={caps}
AmbientCapabilities={caps}
{CONTROLLER_HARDENING}
[Install]
WantedBy=multi-user.target
"""
    return f"""\
# {UNIT_NAMES['agent']} — written by `ocadm install-service agent`
[Unit]
Description=cloudpods-one host agent (libvirt guests, bridges, DHCP)
After=network-online.target libvirtd.service
Wants=network-online.target libvirtd.service

[Service]
Type=exec
Environment=CLOUDPODS_DATA_DIR={d}
ExecStart={_exec([*spec.command, 'agent', '--data-dir', d])}
Restart=always
RestartSec=3
TimeoutStopSec=30
UMask=0077
LimitNOFILE=65536
{storage}{AGENT_HARDENING}
[Install]
WantedBy=multi-user.target
"""


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise click.ClickException(f"`{' '.join(cmd)}` failed (exit {r.returncode}): {last[0]}")


def _ensure_user(user: str, home: Path) -> None:
    import pwd

    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    _run(["useradd", "--system", "--user-group", "--home-dir", str(home), "--no-create-home",
          "--shell", "/usr/sbin/nologin", user])
    click.echo(f"Created system user {user}.")


def _agent_joined(data_dir: Path) -> bool:
    try:
        from core.agent.config import CONFIG_NAME
    except ImportError:  # an agent-less build
        return True
    return (data_dir / CONFIG_NAME).exists()


def _controller_port(data_dir: Path) -> int | None:
    from core.config import Settings
    from core.errors import CloudpodsError

    try:
        return Settings.load(data_dir).port if (data_dir / "config.toml").exists() else None
    except (OSError, CloudpodsError):  # unreadable here (dry run as another user): assume the default port
        return None


@click.command("install-service")
@click.argument("role", type=click.Choice(ROLES), default="controller")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data directory [default /var/lib/cloudpods-one, agent: /var/lib/cloudpods-one-agent]")
@click.option("--user", default=DEFAULT_USER, show_default=True, help="System user the controller runs as")
@click.option("--unit-dir", type=click.Path(file_okay=False, path_type=Path), default=UNIT_DIR, show_default=True)
@click.option("--binary", "binary", default=None, metavar="PATH",
              help="ocadm to run [default: this one]; a cloudpods-one binary gets its `ocadm` argument")
@click.option("--init/--no-init", "do_init", default=True,
              help="Controller: run `ocadm init` as the service user when the data dir is new")
@click.option("--start", is_flag=True, help="Also run systemctl daemon-reload and enable --now")
@click.option("--dry-run", is_flag=True, help="Print the unit and change nothing")
def install_service(role: str, data_dir: Path | None, user: str, unit_dir: Path, binary: str | None,
                    do_init: bool, start: bool, dry_run: bool) -> None:
    """Write a systemd unit for the controller or the agent."""
    from core.errors import InputParameterError

    d = (data_dir or DEFAULT_DATA[role]).expanduser().absolute()
    command = ocadm_command()
    if binary:
        b = os.path.abspath(binary)
        command = [b, "ocadm"] if os.path.basename(b).startswith("cloudpods-one") else [b]
    spec = UnitSpec(role, command, d, user=user, port=_controller_port(d) if role == "controller" else None)
    text = render_unit(spec)
    path = unit_dir / UNIT_NAMES[role]
    if dry_run:
        click.echo(f"# would write {path}")
        click.echo(text, nl=False)
        return
    if not os.access(command[0], os.X_OK):
        raise InputParameterError(f"{command[0]} is not an executable; pass --binary PATH")
    unit_dir.mkdir(parents=True, exist_ok=True)
    if role == "controller":
        if os.geteuid() == 0 and user != "root":
            _ensure_user(user, d)
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(d, user, user)
        if do_init and not (d / "config.toml").exists():
            as_user = ["runuser", "-u", user, "--"] if os.geteuid() == 0 and user != "root" else []
            r = subprocess.run([*as_user, *command, "init", "--data-dir", str(d)])
            if r.returncode != 0:
                raise click.ClickException(f"`ocadm init --data-dir {d}` failed; the unit was not written")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)
    click.echo(f"Wrote {path}.")
    name = UNIT_NAMES[role]
    if role == "agent" and not _agent_joined(d):
        click.echo(f"Note: this host has not joined yet: ocadm join --controller URL --token TOKEN --data-dir {d}")
    if start:
        _run(["systemctl", "daemon-reload"])
        _run(["systemctl", "enable", "--now", name])
        click.echo(f"Started {name}: systemctl status {name}")
    else:
        click.echo(f"Next: systemctl daemon-reload && systemctl enable --now {name}")
