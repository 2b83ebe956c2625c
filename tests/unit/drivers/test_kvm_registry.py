from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from drivers import base
from drivers.base import Capability, DriverUnavailable, HypervisorDriver, NotSupported
from drivers.registry import DRIVERS, get_driver


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_every_registry_entry_imports(name: str) -> None:
    module, _, attr = DRIVERS[name].partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        pytest.skip(f"{name} SDK missing: {exc.name}")
    cls = getattr(mod, attr)
    assert get_driver(name) is cls
    assert cls.name == name
    assert isinstance(cls.capabilities, frozenset)
    assert all(isinstance(c, Capability) for c in cls.capabilities)


def test_kvm_driver_satisfies_the_protocol() -> None:
    pytest.importorskip("libvirt")
    cls = get_driver("kvm")
    for member in (
        "list_guests",
        "get_guest",
        "create_guest",
        "start_guest",
        "stop_guest",
        "reboot_guest",
        "reset_guest",
        "suspend_guest",
        "resume_guest",
        "delete_guest",
        "host_facts",
        "watch_events",
        "close",
    ):
        assert callable(getattr(cls, member)), member
    assert isinstance(cls("test:///default"), HypervisorDriver)


def test_unknown_driver_is_a_clear_error() -> None:
    with pytest.raises(DriverUnavailable, match="unknown driver 'nope'; known: .*kvm"):
        get_driver("nope")


def test_missing_sdk_says_which_package() -> None:
    # a fresh interpreter where `import libvirt` fails, as on a host without the [kvm] extra
    code = (
        "import sys; sys.modules['libvirt'] = None\n"
        "from drivers.registry import get_driver\n"
        "from drivers.base import DriverUnavailable\n"
        "try:\n    get_driver('kvm')\nexcept DriverUnavailable as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "kvm needs libvirt-python"


def test_importing_the_registry_loads_no_sdk() -> None:
    code = "import sys, drivers.registry, drivers.base; print('libvirt' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_not_supported_comes_from_one_helper() -> None:
    class Tiny:
        name = "tiny"
        capabilities = frozenset({Capability.REBOOT})

    base.require(Tiny(), Capability.REBOOT, "reboot")  # type: ignore[arg-type]
    with pytest.raises(NotSupported, match="tiny does not support live_migrate") as exc:
        base.require(Tiny(), Capability.LIVE_MIGRATE, "live_migrate")  # type: ignore[arg-type]
    assert (exc.value.driver, exc.value.op) == ("tiny", "live_migrate")


def test_base_exports() -> None:
    assert sorted(base.__all__) == sorted(set(base.__all__))
    for name in base.__all__:
        assert hasattr(base, name), name
