"""One static table of drivers, imported lazily on first use.

Scanning packages or relying only on entry points breaks a PyInstaller binary, so the runtime,
the tests and packaging (hidden imports) all read ``DRIVERS``. Out-of-tree drivers may add
themselves through the ``cloudpods_one.drivers`` entry-point group, in addition to this table.
This module is the seam core calls: it resolves names with ``core.loader`` (stdlib only, the one
"module:attr" loader); the driver packages themselves never import core.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from core.loader import BadReference, load
from drivers.base import DriverUnavailable

__all__ = ["DRIVERS", "ENTRY_POINT_GROUP", "SDKS", "get_driver", "known_drivers"]

DRIVERS: dict[str, str] = {
    "kvm": "drivers.kvm.driver:KvmDriver",
    "baremetal": "drivers.baremetal.driver:BaremetalDriver",
    "esxi": "drivers.esxi.driver:EsxiDriver",
    "aws": "drivers.aws.driver:AwsDriver",
    "cloudpods": "drivers.cloudpods.driver:CloudpodsDriver",
}

# The third-party module each driver needs, and the distribution that provides it.
SDKS: dict[str, tuple[str, str]] = {
    "kvm": ("libvirt", "libvirt-python"),
    "esxi": ("pyVmomi", "pyvmomi"),
    "aws": ("boto3", "boto3"),
}

ENTRY_POINT_GROUP = "cloudpods_one.drivers"

_loaded: dict[str, Any] = {}


def known_drivers() -> dict[str, str]:
    """The static table plus any out-of-tree entry points (the static table wins on a clash)."""
    table = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    table.update(DRIVERS)
    return table


def get_driver(name: str) -> Any:
    """Return the driver class registered as ``name``, importing its module on first use."""
    if name in _loaded:
        return _loaded[name]
    table = known_drivers()
    target = table.get(name)
    if target is None:
        raise DriverUnavailable(f"unknown driver {name!r}; known: {', '.join(sorted(table))}")
    sdk = SDKS.get(name)
    try:
        cls = load(target)
    except ModuleNotFoundError as exc:
        if sdk and exc.name == sdk[0]:
            raise DriverUnavailable(f"{name} needs {sdk[1]}") from exc
        raise DriverUnavailable(f"{name}: cannot import {target.partition(':')[0]}: {exc}") from exc
    except BadReference as exc:
        raise DriverUnavailable(f"{name}: {exc}") from None
    _loaded[name] = cls
    return cls
