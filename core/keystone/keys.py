"""Fernet key repository, laid out like Keystone's: files named 0..N in one directory.

``0`` is the staged key (next primary), the highest number is the primary (signs new tokens),
the rest are secondary (still accepted). ``rotate`` promotes the staged key, stages a new one and
drops the oldest secondaries beyond ``max_active``.
"""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet

from core.config import write_private
from core.errors import CloudpodsError


class NoKeysError(CloudpodsError):
    error_class = "NoKeysError"


class KeyRepository:
    def __init__(self, path: Path, max_active: int = 3) -> None:
        self.path = path
        self.max_active = max(max_active, 2)

    def _indexes(self) -> list[int]:
        if not self.path.is_dir():
            return []
        return sorted(int(p.name) for p in self.path.iterdir() if p.name.isdigit())

    def exists(self) -> bool:
        return len(self._indexes()) >= 2

    def create(self) -> None:
        """Create a new repository with a staged and a primary key (idempotent)."""
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        if self.exists():
            return
        write_private(self.path / "0", Fernet.generate_key())
        write_private(self.path / "1", Fernet.generate_key())

    def rotate(self) -> int:
        """Promote the staged key; return the new primary's index."""
        idx = self._indexes()
        if not idx:
            raise NoKeysError(f"no token keys in {self.path}: run `ocadm init` first")
        new_primary = idx[-1] + 1
        os.replace(self.path / "0", self.path / str(new_primary))
        write_private(self.path / "0", Fernet.generate_key())
        secondaries = [i for i in self._indexes() if i not in (0, new_primary)]
        while len(secondaries) + 2 > self.max_active:
            (self.path / str(secondaries.pop(0))).unlink()
        return new_primary

    def stamp(self) -> tuple[tuple[str, int], ...]:
        """What changes when keys are rotated: each key file's name and modification time."""
        if not self.path.is_dir():
            return ()
        return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in self.path.iterdir() if p.name.isdigit()))

    def fernet(self) -> MultiFernet:
        idx = self._indexes()
        if len(idx) < 2:
            raise NoKeysError(f"no token keys in {self.path}: run `ocadm init` (or `ocadm token rotate`)")
        # primary first so MultiFernet encrypts with it; staged last (accepted, never used to sign)
        order = sorted((i for i in idx if i != 0), reverse=True) + [0]
        return MultiFernet([Fernet((self.path / str(i)).read_bytes().strip()) for i in order])
