"""Fernet tokens: a versioned payload, encrypted and signed with the key repository."""
from __future__ import annotations

import base64
import binascii
import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from cryptography.fernet import InvalidToken

from core.errors import CloudpodsError, UnauthorizedError
from core.keystone.keys import KeyRepository

PAYLOAD_VERSION = 1


def new_audit_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


def is_canonical(token: str) -> bool:
    """True if ``token`` is exactly the URL-safe base64 text Fernet writes for its bytes.

    The lenient decoder behind Fernet ignores what follows the padding, characters outside the
    alphabet and the unused low bits of the last character, so one token has many spellings that
    all decrypt: each would authenticate (and occupy a cache slot of its own). Only the one
    spelling the codec itself produces is accepted.
    """
    try:
        raw = token.encode("ascii")
        return base64.urlsafe_b64encode(base64.urlsafe_b64decode(raw)) == raw
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return False


@dataclass(frozen=True)
class TokenPayload:
    user_id: str
    methods: tuple[str, ...]
    scope: str  # project | domain | system | unscoped
    scope_id: str  # project id, domain id, "all" or ""
    issued_at: float
    expires_at: float
    audit_id: str
    audit_chain: tuple[str, ...] = field(default=())
    # a token from an application credential: its roles and access rules limit the token
    app_cred_id: str = ""

    @property
    def expires(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, UTC)

    @property
    def issued(self) -> datetime:
        return datetime.fromtimestamp(self.issued_at, UTC)


class TokenCodec:
    """Encrypts with the primary key, accepts every active key; follows ``ocadm token rotate``.

    The key directory is re-read when its listing changes (checked at most every ``RELOAD_S``), so a
    rotation on a shared key volume reaches every running replica without a restart.
    """

    RELOAD_S = 2.0

    def __init__(self, keys: KeyRepository) -> None:
        self.keys = keys
        self._fernet = keys.fernet()
        self._stamp = keys.stamp()
        self._checked = time.monotonic()
        self.generation = 0  # bumped on reload: caches of validated tokens must start over

    def reload(self) -> None:
        self._fernet = self.keys.fernet()
        self._stamp = self.keys.stamp()
        self.generation += 1

    def refresh(self) -> None:
        """Re-read the key repository if it changed (cheap; rate-limited)."""
        self._maybe_reload()

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.RELOAD_S:
            return
        self._checked = now
        try:
            if self.keys.stamp() != self._stamp:
                self.reload()
        except (OSError, ValueError, CloudpodsError):
            pass  # a repository caught mid-rotation: keep the keys we have, look again later

    def encode(self, p: TokenPayload) -> str:
        self._maybe_reload()
        d = asdict(p)
        d["v"] = PAYLOAD_VERSION
        if not d["app_cred_id"]:
            del d["app_cred_id"]  # the same bytes as before application credentials existed
        raw = json.dumps(d, separators=(",", ":")).encode()
        return self._fernet.encrypt(raw).decode()

    def decode(self, token: str) -> TokenPayload:
        """Decrypt and check expiry; raises UnauthorizedError for anything wrong."""
        if not token or len(token) > 4096 or not is_canonical(token):
            raise UnauthorizedError("invalid token")
        self._maybe_reload()
        try:
            d = json.loads(self._fernet.decrypt(token.encode()))
            if d.pop("v", None) != PAYLOAD_VERSION:
                raise UnauthorizedError("invalid token")
            p = TokenPayload(**{**d, "methods": tuple(d["methods"]), "audit_chain": tuple(d["audit_chain"])})
        except (InvalidToken, ValueError, TypeError, KeyError) as e:
            raise UnauthorizedError("invalid token") from e
        if p.expires_at <= datetime.now(UTC).timestamp():
            raise UnauthorizedError("token expired")
        return p
