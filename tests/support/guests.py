"""Clean-up of the real tier: end guests a failed test left on a libvirtd (qemu:///system is shared)."""
from __future__ import annotations

from collections.abc import Iterable


def destroy_domains(uri: str, ids: Iterable[str]) -> None:
    """Destroy and undefine the domains ``ids`` (UUIDs) on ``uri``; ones already gone, or a daemon
    that is gone with its guests, are fine."""
    import libvirt

    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return
    try:
        for sid in ids:
            try:
                dom = conn.lookupByUUIDString(sid)
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
            except libvirt.libvirtError:
                pass  # gone already
    finally:
        conn.close()
