"""scrypt password hashing."""
from __future__ import annotations

import time

import pytest

from core.errors import InputParameterError
from core.keystone.passwords import DUMMY_HASH, MAX_PASSWORD_BYTES, hash_password, verify_password


def test_hash_and_verify() -> None:
    h = hash_password("correct horse")
    assert h.startswith("scrypt$") and h != hash_password("correct horse")  # salted
    assert verify_password("correct horse", h)
    assert not verify_password("correct hors", h)
    assert not verify_password("x", "not-a-hash") and not verify_password("x", "")


def test_long_passwords_count_in_full() -> None:
    """No bcrypt-style 72-byte truncation: byte 100 matters."""
    base = "a" * 99
    h = hash_password(base + "1")
    assert not verify_password(base + "2", h)


def test_limits() -> None:
    for bad in ("", "x" * (MAX_PASSWORD_BYTES + 1)):
        with pytest.raises(InputParameterError):
            hash_password(bad)
    t0 = time.process_time()  # CPU, not wall clock: a loaded machine must not fail this
    assert not verify_password("y" * 100_000, DUMMY_HASH)  # capped work, never a match
    assert time.process_time() - t0 < 2.0


def test_dummy_hash_costs_what_a_real_one_does() -> None:
    """Unknown users are checked against DUMMY_HASH: same algorithm, parameters and sizes as a stored
    hash, so the check takes as long; it is not computed at import (no password hashes to it)."""
    real = hash_password("some password").split("$")
    dummy = DUMMY_HASH.split("$")
    assert dummy[:4] == real[:4] and [len(x) for x in dummy] == [len(x) for x in real]
    assert not verify_password("some password", DUMMY_HASH)
