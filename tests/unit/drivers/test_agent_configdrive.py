from __future__ import annotations

import io
import shutil
import subprocess
from email import message_from_bytes
from pathlib import Path

import pytest
import yaml

pycdlib = pytest.importorskip("pycdlib", reason="pycdlib not installed (pip install '.[kvm]')")
from drivers.kvm.configdrive import (  # noqa: E402  (after the skip: needs pycdlib)
    ConfigDrive,
    ConfigDriveError,
    NicConfig,
    build_config_drive,
    sha512_crypt,
)

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyMaterialOnlyForTests me@laptop"


def read_iso(path: Path) -> tuple[str, dict[str, bytes]]:
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        files = {}
        for name in ("meta-data", "user-data", "network-config"):
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, rr_path="/" + name)
            files[name] = buf.getvalue()
            jbuf = io.BytesIO()
            iso.get_file_from_iso_fp(jbuf, joliet_path="/" + name)
            assert jbuf.getvalue() == files[name]
        return label, files
    finally:
        iso.close()


def test_nocloud_iso(tmp_path: Path) -> None:
    cd = ConfigDrive(
        instance_id="srv-0001",
        hostname="web-1.example.org",
        ssh_keys=(KEY,),
        password="Corr3ct horse!",
        nics=(
            NicConfig(mac="52:54:00:12:34:56"),
            NicConfig(
                mac="52:54:00:12:34:57",
                dhcp=False,
                address="10.1.0.5/24",
                gateway="10.1.0.1",
                dns=("10.1.0.2",),
                mtu=1450,
            ),
        ),
    )
    path = tmp_path / "i" / "config.iso"
    assert build_config_drive(str(path), cd) == str(path)
    label, files = read_iso(path)
    assert label == "cidata"
    assert yaml.safe_load(files["meta-data"]) == {
        "instance-id": "srv-0001",
        "local-hostname": "web-1.example.org",
    }

    ud = files["user-data"].decode()
    assert ud.startswith("#cloud-config\n")
    conf = yaml.safe_load(ud)
    assert conf["hostname"] == "web-1" and conf["fqdn"] == "web-1.example.org"
    assert conf["ssh_authorized_keys"] == [KEY]
    (user,) = conf["chpasswd"]["users"]
    assert user["name"] == "root" and user["type"] == "hash" and user["password"].startswith("$6$")
    salt = user["password"].split("$")[2]
    assert user["password"] == sha512_crypt("Corr3ct horse!", salt)
    assert b"Corr3ct horse!" not in path.read_bytes()  # never in clear text
    assert path.stat().st_mode & 0o777 == 0o600

    net = yaml.safe_load(files["network-config"])
    assert net == {
        "version": 2,
        "ethernets": {
            "eth0": {"match": {"macaddress": "52:54:00:12:34:56"}, "set-name": "eth0", "dhcp4": True},
            "eth1": {
                "match": {"macaddress": "52:54:00:12:34:57"},
                "set-name": "eth1",
                "dhcp4": False,
                "addresses": ["10.1.0.5/24"],
                "routes": [{"to": "0.0.0.0/0", "via": "10.1.0.1"}],
                "nameservers": {"addresses": ["10.1.0.2"]},
                "mtu": 1450,
            },
        },
    }


def test_user_data_is_merged_as_multipart(tmp_path: Path) -> None:
    cd = ConfigDrive(instance_id="i", hostname="h", user_data="#!/bin/sh\necho hi > /tmp/x\n")
    build_config_drive(str(tmp_path / "c.iso"), cd)
    _, files = read_iso(tmp_path / "c.iso")
    msg = message_from_bytes(files["user-data"])
    parts = [p for p in msg.walk() if not p.is_multipart()]
    assert [p.get_content_type() for p in parts] == ["text/cloud-config", "text/x-shellscript"]
    assert parts[1].get_payload(decode=True) == b"#!/bin/sh\necho hi > /tmp/x\n"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl missing")
@pytest.mark.parametrize(
    "pw, salt", [("password", "abc"), ("x" * 100, "saltsaltsaltsalt"), ("pässwörd", "./Z9")]
)
def test_sha512_crypt_matches_openssl(pw: str, salt: str) -> None:
    want = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, pw], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert sha512_crypt(pw, salt) == want


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hostname": "bad_host!"}, "bad hostname"),
        ({"ssh_keys": ("not a key",)}, "not an OpenSSH public key"),
        ({"password": "two\nlines"}, "password"),
        ({"instance_id": ""}, "bad instance id"),
        ({"user": "Root"}, "bad user name"),
    ],
)
def test_bad_input(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigDriveError, match=message):
        ConfigDrive(**({"instance_id": "i", "hostname": "h"} | kwargs))


def test_bad_nics_and_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigDriveError, match="needs an address"):
        NicConfig(mac="52:54:00:00:00:01", dhcp=False)
    with pytest.raises(ConfigDriveError, match="outside"):
        NicConfig(mac="52:54:00:00:00:01", dhcp=False, address="10.0.0.5/24", gateway="10.9.0.1")
    with pytest.raises(ConfigDriveError, match="absolute"):
        build_config_drive("rel.iso", ConfigDrive(instance_id="i", hostname="h"))
