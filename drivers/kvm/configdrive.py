"""cloud-init NoCloud config drive: an ISO labelled ``cidata`` with meta-data, user-data and
network-config (v2), built with pycdlib, so any cloud image configures itself on first boot.

The password never reaches disk in clear text: the cloud-config carries its SHA-512 crypt hash.

    build_config_drive("/var/lib/cloudpods/instances/<id>/config.iso", ConfigDrive(
        instance_id="<id>", hostname="vm1", ssh_keys=("ssh-ed25519 AAAA... me",),
        password="s3cret", nics=(NicConfig(mac="52:54:00:12:34:56", dhcp=True),)))
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

import pycdlib
import yaml

from drivers.base import InvalidSpec

__all__ = ["ConfigDrive", "ConfigDriveError", "NicConfig", "build_config_drive", "render", "sha512_crypt"]

VOLUME_LABEL = "cidata"  # what cloud-init's NoCloud datasource looks for
ACCOUNT = "root"  # the login whose password the drive (and the guest agent) sets

_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class ConfigDriveError(InvalidSpec):
    """The config drive contents are invalid."""


@dataclass(frozen=True)
class NicConfig:
    """One guest NIC, matched by MAC: DHCP (our agent answers it) or a static address."""

    mac: str
    dhcp: bool = True
    address: str | None = None  # "10.0.0.5/24" when static
    gateway: str | None = None
    dns: tuple[str, ...] = ()
    mtu: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mac", self.mac.lower())
        if not _MAC_RE.match(self.mac):
            raise ConfigDriveError(f"bad MAC address {self.mac!r}")
        if not self.dhcp:
            if not self.address:
                raise ConfigDriveError(f"nic {self.mac}: a static nic needs an address")
            try:
                iface = ipaddress.IPv4Interface(self.address)
            except ValueError:
                raise ConfigDriveError(
                    f"nic {self.mac}: bad address {self.address!r} (want a.b.c.d/len)"
                ) from None
            if self.gateway is not None:
                try:
                    gw = ipaddress.IPv4Address(self.gateway)
                except ValueError:
                    raise ConfigDriveError(f"nic {self.mac}: bad gateway {self.gateway!r}") from None
                if gw not in iface.network:
                    raise ConfigDriveError(f"nic {self.mac}: gateway {gw} is outside {iface.network}")
        object.__setattr__(self, "dns", tuple(self.dns))
        for d in self.dns:
            try:
                ipaddress.ip_address(d)
            except ValueError:
                raise ConfigDriveError(f"nic {self.mac}: bad DNS server {d!r}") from None


@dataclass(frozen=True)
class ConfigDrive:
    instance_id: str
    hostname: str
    ssh_keys: tuple[str, ...] = ()
    password: str | None = None
    user: str = ACCOUNT  # whose password is set; ssh keys go to the image's default user and root
    user_data: str | bytes | None = None  # the user's own cloud-config or script, merged in
    nics: tuple[NicConfig, ...] = ()

    def __post_init__(self) -> None:
        if not self.instance_id or len(self.instance_id) > 128 or any(c in self.instance_id for c in "\n\0"):
            raise ConfigDriveError(f"bad instance id {self.instance_id!r}")
        if not _HOSTNAME_RE.match(self.hostname):
            raise ConfigDriveError(f"bad hostname {self.hostname!r}")
        if not _USER_RE.match(self.user):
            raise ConfigDriveError(f"bad user name {self.user!r}")
        object.__setattr__(self, "ssh_keys", tuple(k.strip() for k in self.ssh_keys))
        for key in self.ssh_keys:
            if not re.match(r"^(ssh-|ecdsa-|sk-)\S+ \S+", key) or "\n" in key:
                raise ConfigDriveError(f"not an OpenSSH public key: {key[:40]!r}")
        if self.password is not None and (
            not self.password or "\n" in self.password or len(self.password) > 256
        ):
            raise ConfigDriveError("password must be 1..256 characters on one line")
        object.__setattr__(self, "nics", tuple(self.nics))
        if len({n.mac for n in self.nics}) != len(self.nics):
            raise ConfigDriveError("two nics share a MAC address")


def render(cd: ConfigDrive, *, salt: str | None = None) -> dict[str, bytes]:
    """The three NoCloud files: {'meta-data': ..., 'user-data': ..., 'network-config': ...}."""
    meta = {"instance-id": cd.instance_id, "local-hostname": cd.hostname}
    cloud_config: dict[str, Any] = {
        "hostname": cd.hostname.split(".")[0],
        "preserve_hostname": False,
    }
    if "." in cd.hostname:
        cloud_config["fqdn"] = cd.hostname
    if cd.ssh_keys:
        cloud_config["ssh_authorized_keys"] = list(cd.ssh_keys)
        cloud_config["disable_root"] = False
    if cd.password is not None:
        hashed = sha512_crypt(cd.password, salt or _salt())
        cloud_config["chpasswd"] = {
            "expire": False,
            "users": [{"name": cd.user, "password": hashed, "type": "hash"}],
        }
        cloud_config["ssh_pwauth"] = True
        # chpasswd runs once per instance; bootcmd at every boot, so a password reset (a rewritten
        # drive, same instance) takes effect at the next boot -- once per password (a marker named
        # after its hash), so a password the user changes inside the guest later is not reverted.
        # The hash only: never the password.
        mark = "/var/lib/cloud/password-" + hashlib.sha256(hashed.encode()).hexdigest()[:16]
        cloud_config["bootcmd"] = [["sh", "-c", f"[ -e {mark} ] || {{ echo '{cd.user}:{hashed}' | chpasswd -e "
                                                f"&& mkdir -p /var/lib/cloud && touch {mark}; }}"]]
    ours = "#cloud-config\n" + yaml.safe_dump(cloud_config, sort_keys=True)
    return {
        "meta-data": yaml.safe_dump(meta, sort_keys=True).encode(),
        "user-data": _user_data(ours, cd.user_data),
        "network-config": yaml.safe_dump(_network_config(cd.nics), sort_keys=False).encode(),
    }


def build_config_drive(path: str, cd: ConfigDrive, *, salt: str | None = None) -> str:
    """Write the ISO to ``path`` (atomically: a reader never sees half an ISO); returns ``path``."""
    if not os.path.isabs(path):
        raise ConfigDriveError(f"config drive path must be absolute, got {path!r}")
    files = render(cd, salt=salt)
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_LABEL)
    for name, data in files.items():
        iso_name = "/" + name.upper().replace("-", "_") + ".;1"
        iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name, joliet_path="/" + name)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".configdrive.", suffix=".iso")
    try:
        with os.fdopen(fd, "wb") as f:
            iso.write_fp(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # holds the password hash and user data
        os.replace(tmp, path)
    finally:
        iso.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _network_config(nics: tuple[NicConfig, ...]) -> dict[str, Any]:
    ethernets: dict[str, Any] = {}
    for i, nic in enumerate(nics):
        eth: dict[str, Any] = {"match": {"macaddress": nic.mac}, "set-name": f"eth{i}"}
        if nic.dhcp:
            eth["dhcp4"] = True
        else:
            eth["dhcp4"] = False
            eth["addresses"] = [nic.address]
            if nic.gateway:
                eth["routes"] = [{"to": "0.0.0.0/0", "via": nic.gateway}]
        if nic.dns:
            eth["nameservers"] = {"addresses": list(nic.dns)}
        if nic.mtu:
            eth["mtu"] = nic.mtu
        ethernets[f"eth{i}"] = eth
    return {"version": 2, "ethernets": ethernets}


def _user_data(ours: str, theirs: str | bytes | None) -> bytes:
    if theirs is None or (isinstance(theirs, (str, bytes)) and not theirs.strip()):
        return ours.encode()
    text = theirs.decode() if isinstance(theirs, bytes) else theirs
    # cloud-init merges the parts of a MIME multipart user-data: ours first, the user's after
    msg = MIMEMultipart(boundary="==cloudpods-one==")
    msg.attach(MIMEText(ours, "cloud-config", "utf-8"))
    subtype = (
        "cloud-config"
        if text.startswith("#cloud-config")
        else "x-shellscript"
        if text.startswith("#!")
        else "plain"
    )
    part = MIMEText(text, subtype, "utf-8")
    msg.attach(part)
    return msg.as_bytes()


# --- SHA-512 crypt ($6$), as glibc and `openssl passwd -6` do it -------------------------------
# (the stdlib crypt module is deprecated and gone in 3.13; this follows Drepper's published spec)

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_PERM = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
    (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
    (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41),
)  # fmt: skip


def _salt() -> str:
    return "".join(secrets.choice(_ITOA64) for _ in range(16))


def sha512_crypt(password: str, salt: str, rounds: int = 5000) -> str:
    """``$6$salt$hash`` for ``password``; accepted by cloud-init, chpasswd and /etc/shadow."""
    if not re.fullmatch(r"[./0-9A-Za-z]{1,16}", salt):
        raise ConfigDriveError("salt must be 1..16 of [./0-9A-Za-z]")
    if not 1000 <= rounds <= 999_999_999:
        raise ConfigDriveError("rounds must be 1000..999999999")
    pw, s = password.encode(), salt.encode()
    b = hashlib.sha512(pw + s + pw).digest()
    a = hashlib.sha512(pw + s)
    n = len(pw)
    while n > 64:
        a.update(b)
        n -= 64
    a.update(b[:n])
    n = len(pw)
    while n > 0:
        a.update(b if n & 1 else pw)
        n >>= 1
    c = a.digest()
    dp = hashlib.sha512(pw * len(pw)).digest()
    p = (dp * (len(pw) // 64 + 1))[: len(pw)]
    ds = hashlib.sha512(s * (16 + c[0])).digest()
    sb = (ds * (len(s) // 64 + 1))[: len(s)]
    for r in range(rounds):
        h = hashlib.sha512(p if r & 1 else c)
        if r % 3:
            h.update(sb)
        if r % 7:
            h.update(p)
        h.update(c if r & 1 else p)
        c = h.digest()
    out = []
    for i, j, k in _PERM:
        out.append(_b64(c[i], c[j], c[k], 4))
    out.append(_b64(0, 0, c[63], 2))
    prefix = "$6$" if rounds == 5000 else f"$6$rounds={rounds}$"
    return f"{prefix}{salt}${''.join(out)}"


def _b64(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    chars = []
    for _ in range(n):
        chars.append(_ITOA64[w & 0x3F])
        w >>= 6
    return "".join(chars)
