"""Encryption at rest for credential blobs (EC2 secrets), with its own key repository.

Kept apart from the token keys (as Keystone does): rotating token keys every few hours must not
make stored secrets unreadable. The repository ``<data_dir>/credential-keys`` uses the same layout
(``0`` staged, highest primary); it is created on first use when missing. Replicas share it the
way they share the token keys.
"""
from __future__ import annotations

import threading
from pathlib import Path

from cryptography.fernet import InvalidToken

from core.errors import CloudpodsError
from core.keystone.keys import KeyRepository


class CredentialCipher:
    def __init__(self, path: Path) -> None:
        self.repo = KeyRepository(path, max_active=10)
        self._lock = threading.Lock()

    def _fernet(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if not self.repo.exists():
                self.repo.create()
            return self.repo.fernet()

    def encrypt(self, plain: str) -> str:
        return str(self._fernet().encrypt(plain.encode()).decode())

    def decrypt(self, token: str) -> str:
        try:
            return str(self._fernet().decrypt(token.encode()).decode())
        except InvalidToken:
            raise CloudpodsError("a stored credential cannot be decrypted: its key was lost or rotated away") \
                from None


def cipher_for(data_dir: Path) -> CredentialCipher:
    return CredentialCipher(data_dir / "credential-keys")


_process: list[CredentialCipher] = []


def use_cipher(c: CredentialCipher) -> None:
    """The controller's cipher for secrets kept in rows of other services (set by the app factory)."""
    _process[:] = [c]


def process_cipher() -> CredentialCipher:
    if not _process:
        raise CloudpodsError("no credential key repository configured in this process")
    return _process[0]


def seal(plain: str) -> str:
    """Encrypt a secret another service keeps at rest (a server password in a task's params)."""
    return process_cipher().encrypt(plain)


def unseal(token: str) -> str:
    return process_cipher().decrypt(token)
