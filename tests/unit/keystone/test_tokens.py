"""Fernet tokens and the key repository: round trip, tampering, expiry, rotation followed live."""
from __future__ import annotations

import time

import pytest

from core.errors import UnauthorizedError
from core.keystone.keys import KeyRepository, NoKeysError
from core.keystone.tokens import TokenCodec, TokenPayload, new_audit_id


def payload(lifetime: float = 60) -> TokenPayload:
    now = time.time()
    return TokenPayload("u1", ("password",), "project", "p1", now, now + lifetime, new_audit_id())


def test_round_trip_and_tamper(keys: KeyRepository) -> None:
    c = TokenCodec(keys)
    p = payload()
    tok = c.encode(p)
    assert c.decode(tok) == p
    for bad in (tok[:-2] + "xx", "", "garbage", "x" * 5000):
        with pytest.raises(UnauthorizedError):
            c.decode(bad)


def variants(tok: str) -> list[str]:
    """Spellings of ``tok`` that a lenient base64 decoder reads as the same bytes."""
    base = tok.rstrip("=")
    last = base[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    pad = len(tok) - len(base)
    unused = {1: 2, 2: 4}.get(pad, 0)  # low bits of the last character that carry nothing
    same_bits = [c for c in alphabet if c != last and alphabet.index(c) >> unused == alphabet.index(last) >> unused]
    out = [tok + "x", tok + "=", tok + "==", tok + "AAAA", tok[:10] + "\n" + tok[10:], tok[:10] + "*" + tok[10:],
           " " + tok, tok + "\x00"]
    if same_bits and unused:
        out.append(base[:-1] + same_bits[0] + tok[len(base):])
    return out


def test_only_the_canonical_spelling_decodes(keys: KeyRepository) -> None:
    c = TokenCodec(keys)
    for n in range(6):  # payload sizes that give each padding length
        p = TokenPayload("u" * n, ("password",), "project", "p1", time.time(), time.time() + 60, new_audit_id())
        tok = c.encode(p)
        assert c.decode(tok) == p
        for bad in variants(tok):
            with pytest.raises(UnauthorizedError):
                c.decode(bad)


def test_expired(keys: KeyRepository) -> None:
    c = TokenCodec(keys)
    with pytest.raises(UnauthorizedError, match="expired"):
        c.decode(c.encode(payload(lifetime=-1)))


def test_other_repository_rejects(keys: KeyRepository, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = KeyRepository(tmp_path / "other")
    other.create()
    with pytest.raises(UnauthorizedError):
        TokenCodec(other).decode(TokenCodec(keys).encode(payload()))


def test_rotation_is_followed_without_restart(keys: KeyRepository) -> None:
    c = TokenCodec(keys)
    c.RELOAD_S = 0.0  # check the directory on every call
    old = c.encode(payload())
    keys.rotate()
    assert c.decode(old).user_id == "u1"  # the old primary is now a secondary
    assert c.generation == 1
    new = c.encode(payload())
    keys.rotate()
    assert c.decode(new).user_id == "u1"
    with pytest.raises(UnauthorizedError):  # max_active=3: the first primary is gone
        c.decode(old)


def test_staged_key_is_accepted_before_promotion(keys: KeyRepository) -> None:
    """A replica that rotated first signs with the key others still hold as staged."""
    ahead = TokenCodec(keys)
    behind_fernet = keys.fernet()
    keys.rotate()
    ahead.reload()
    assert behind_fernet.decrypt(ahead.encode(payload()).encode())


def test_empty_repository_refuses(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NoKeysError, match="ocadm init"):
        TokenCodec(KeyRepository(tmp_path / "none"))
