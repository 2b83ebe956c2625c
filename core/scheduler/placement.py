"""What one placement decision is: a host, a storage per disk, a network per nic, and its claim."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class DiskPlacement:
    index: int
    storage_id: str
    size: int


@dataclass(frozen=True, slots=True)
class NicPlacement:
    index: int
    network_id: str


@dataclass(frozen=True, slots=True)
class Placement:
    """One instance placed on one host; also the claim the snapshot and the DB record.

    ``generation`` is the host generation the decision was made against: the DB claim only
    succeeds while the host row still has it (see ``claims.py``).
    """

    claim_id: str
    instance: int
    host_id: str
    host_name: str
    generation: int
    vcpu: int
    vmem: int
    disks: tuple[DiskPlacement, ...] = ()
    nics: tuple[NicPlacement, ...] = ()
    groups: tuple[str, ...] = ()

    def to_candidate(self) -> dict[str, Any]:
        """Cloudpods' ``CandidateResource`` shape (plus the nics we chose)."""
        return {
            "host_id": self.host_id,
            "name": self.host_name,
            "disks": [{"index": d.index, "storage_id": d.storage_id} for d in self.disks],
            "nets": [{"index": n.index, "network_id": n.network_id} for n in self.nics],
        }
