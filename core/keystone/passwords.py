"""Password hashing with scrypt (memory-hard, in the standard library)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

_N, _R, _P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024
MAX_PASSWORD_BYTES = 4096  # long inputs are refused instead of hashed for seconds


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4))


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        algo, n, r, p, salt, digest = encoded.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=_MAXMEM, dklen=len(_unb64(digest)))
        return hmac.compare_digest(got, _unb64(digest))
    except (ValueError, TypeError):
        return False


# Verifying against this for unknown users keeps failed-login latency the same.
DUMMY_HASH = hash_password(os.urandom(16).hex())
