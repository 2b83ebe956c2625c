from __future__ import annotations

import uuid

import pytest

from drivers.base import DiskSpec, GuestSpec, InvalidSpec, NicSpec

U = "11111111-2222-3333-4444-555555555555"


def test_spec_normalizes() -> None:
    s = GuestSpec(
        name="vm1",
        uuid=U.upper(),
        vcpu=2,
        memory_mb=512,
        nics=[NicSpec(mac="52:54:00:AA:BB:CC", bridge="br0")],
    )  # type: ignore[arg-type]
    assert s.uuid == U
    assert s.nics == (NicSpec(mac="52:54:00:aa:bb:cc", bridge="br0"),)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "-bad"}, "bad guest name"),
        ({"name": "a" * 64}, "bad guest name"),
        ({"uuid": "nope"}, "bad guest uuid"),
        ({"vcpu": 0}, "vcpu must be"),
        ({"memory_mb": 1}, "memory_mb must be"),
        ({"kernel": "relative/vmlinuz"}, "kernel must be an absolute path"),
        ({"initrd": "/i"}, "initrd given without kernel"),
        (
            {
                "nics": (
                    NicSpec(mac="52:54:00:00:00:01", bridge="b"),
                    NicSpec(mac="52:54:00:00:00:01", bridge="c"),
                )
            },
            "share a MAC",
        ),
    ],
)
def test_bad_spec_is_a_clear_error(kwargs: dict, message: str) -> None:
    args = {"name": "vm1", "uuid": str(uuid.uuid4()), "vcpu": 1, "memory_mb": 256} | kwargs
    with pytest.raises(InvalidSpec, match=message):
        GuestSpec(**args)


@pytest.mark.parametrize(
    "factory, message",
    [
        (lambda: NicSpec(mac="01:00:5e:00:00:01", bridge="br0"), "multicast"),
        (lambda: NicSpec(mac="52:54:00:00:00", bridge="br0"), "bad MAC"),
        (lambda: NicSpec(mac="52:54:00:00:00:01", bridge="a-very-long-bridge-name"), "bad bridge"),
        (lambda: NicSpec(mac="52:54:00:00:00:01", bridge="br0", model="ne2k"), "nic model"),
        (lambda: DiskSpec(path="disk.qcow2"), "absolute path"),
        (lambda: DiskSpec(path="/d", format="vmdk"), "disk format"),
        (lambda: DiskSpec(path="/d", bus="usb"), "disk bus"),
    ],
)
def test_bad_devices(factory, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidSpec, match=message):
        factory()
