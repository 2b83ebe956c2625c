"""KVM through libvirt, split like Nova's libvirt package: xml, host, guest, events, driver;
plus disks (qcow2 overlays) and the per-host image cache."""

from __future__ import annotations

__all__: list[str] = []  # import the submodules themselves; this keeps libvirt unloaded until used
