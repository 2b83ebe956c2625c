"""Fernet tokens: a versioned payload, encrypted and signed with the key repository."""
from __future__ import annotations

import base64
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from cryptography.fernet import InvalidToken

from core.errors import UnauthorizedError
from core.keystone.keys import KeyRepository

PAYLOAD_VERSION = 1


def new_audit_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


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

    @property
    def expires(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, timezone.utc)

    @property
    def issued(self) -> datetime:
        return datetime.fromtimestamp(self.issued_at, timezone.utc)


class TokenCodec:
    def __init__(self, keys: KeyRepository) -> None:
        self.keys = keys
        self._fernet = keys.fernet()

    def reload(self) -> None:
        self._fernet = self.keys.fernet()

    def encode(self, p: TokenPayload) -> str:
        d = asdict(p)
        d["v"] = PAYLOAD_VERSION
        raw = json.dumps(d, separators=(",", ":")).encode()
        return self._fernet.encrypt(raw).decode()

    def decode(self, token: str) -> TokenPayload:
        """Decrypt and check expiry; raises UnauthorizedError for anything wrong."""
        if not token or len(token) > 4096:
            raise UnauthorizedError("invalid token")
        try:
            d = json.loads(self._fernet.decrypt(token.encode()))
            if d.pop("v", None) != PAYLOAD_VERSION:
                raise UnauthorizedError("invalid token")
            p = TokenPayload(**{**d, "methods": tuple(d["methods"]), "audit_chain": tuple(d["audit_chain"])})
        except (InvalidToken, ValueError, TypeError, KeyError) as e:
            raise UnauthorizedError("invalid token") from e
        if p.expires_at <= datetime.now(timezone.utc).timestamp():
            raise UnauthorizedError("token expired")
        return p
