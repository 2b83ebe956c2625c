"""Password hashing with scrypt (memory-hard, in the standard library).

scrypt(N=2^14, r=8, p=1) costs ~16 MiB and tens of milliseconds per check; unlike bcrypt there is no
72-byte truncation, so long pass-phrases count in full (capped at MAX_PASSWORD_BYTES to bound work).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

from core.errors import InputParameterError

_N, _R, _P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024
MAX_PASSWORD_BYTES = 4096  # long inputs are refused instead of hashed for seconds


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4))


def check_new_password(password: object) -> str:
    """A password we are willing to store: a non-empty string of at most MAX_PASSWORD_BYTES."""
    if not isinstance(password, str) or not password:
        raise InputParameterError("password must be a non-empty string")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InputParameterError(f"password is longer than {MAX_PASSWORD_BYTES} bytes")
    return password


DEFAULT_MIN_LENGTH = 6  # Cloudpods' default password policy
_policy = {"min_length": DEFAULT_MIN_LENGTH}


def set_policy(min_length: int) -> None:
    """The controller's password policy (config ``password_min_length``), set by the app factory."""
    if not 1 <= int(min_length) <= 128:
        raise InputParameterError(f"setting password_min_length: {min_length} is not in 1..128")
    _policy["min_length"] = int(min_length)


def min_length() -> int:
    return _policy["min_length"]


def check_password_policy(password: object, what: str = "password") -> str:
    """A new password a person chose (user create/update/change, a server's password): the policy's
    minimum length, in characters. Generated passwords (service users, ``ocadm init``) skip it."""
    check_new_password(password)
    assert isinstance(password, str)
    n = min_length()
    if len(password) < n:
        raise InputParameterError(f"{what}: too short, the password policy requires at least {n} characters")
    return password


def hash_password(password: str) -> str:
    check_new_password(password)
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    if len(password) > MAX_PASSWORD_BYTES:
        password = password[:MAX_PASSWORD_BYTES]  # same cost as any other attempt; it cannot match
        encoded = DUMMY_HASH
    try:
        algo, n, r, p, salt, digest = encoded.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=_MAXMEM, dklen=len(_unb64(digest)))
        return hmac.compare_digest(got, _unb64(digest))
    except (ValueError, TypeError):
        return False


# Verifying against this for unknown users keeps failed-login latency the same: a hash of the
# stored form with a random salt and digest (nothing hashes to it), not a hash computed at import,
# which cost every process importing keystone ~50 ms of CPU and a 16 MiB buffer.
DUMMY_HASH = f"scrypt${_N}${_R}${_P}${_b64(os.urandom(16))}${_b64(os.urandom(32))}"
