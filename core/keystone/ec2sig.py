"""EC2/S3 request signatures, computed the way Keystone's ``/v3/ec2tokens`` checks them.

An EC2-compatible front end (ec2-api, swift3/s3api, …) receives a signed request and forwards what
it saw — access key, signature, verb, host, path, query parameters, headers and the body's sha256 —
to keystone, which recomputes the signature with the stored secret. Versions 0, 1 and 2 (HMAC over
the query) and 4 (AWS4-HMAC-SHA256, in the Authorization header or as X-Amz-* query parameters)
are the ones Keystone accepts. The caller leaves the signature itself out of ``params``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from core.errors import UnauthorizedError

AUTH_TTL = timedelta(minutes=15)  # Keystone's [credential] auth_ttl: how old a signed request may be


def _b(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def canonical_query(params: Mapping[str, Any]) -> str:
    """Sorted keys, RFC 3986 escaping (only ``-_.~`` left as is), as AWS signs a query."""
    return "&".join(f"{quote(k, safe='-_.~')}={quote(_b(params[k]), safe='-_.~')}" for k in sorted(params))


def _b64hmac(secret: str, msg: bytes, digest: Any) -> str:
    return base64.b64encode(hmac.new(secret.encode(), msg, digest).digest()).decode()


def _v4_field(auth_header: str | None, params: Mapping[str, Any], name: str) -> str:
    if auth_header:
        for part in auth_header.split(" ", 1)[-1].split(","):
            key, _sep, val = part.strip().partition("=")
            if key == name:
                return val
        return ""
    return str(params.get(f"X-Amz-{name}", ""))


def _is_v4(params: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
    return headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256") \
        or params.get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256"


def _v4(secret: str, verb: str, path: str, params: Mapping[str, Any], headers: Mapping[str, str],
        body_hash: str) -> str:
    auth_header = headers.get("Authorization") if headers.get("Authorization", "").startswith("AWS4") else None
    signed = _v4_field(auth_header, params, "SignedHeaders")
    credential = _v4_field(auth_header, params, "Credential").split("/")
    if len(credential) != 5 or credential[4] != "aws4_request":
        raise UnauthorizedError("EC2 signature v4: the credential scope is not access/date/region/service/aws4_request")
    _access, date, region, service, _term = credential
    amz_date = headers.get("X-Amz-Date") or str(params.get("X-Amz-Date", ""))
    if not amz_date.startswith(date):
        raise UnauthorizedError("EC2 signature v4: X-Amz-Date does not match the credential's date")
    lower = {k.lower().strip(): str(v).strip() for k, v in headers.items()}
    canon_headers = "".join(f"{h}:{lower[h]}\n" for h in signed.split(";") if h in lower)
    # a POST carries its parameters in the body (covered by body_hash), not in the query
    query = "" if verb.upper() == "POST" else canonical_query(params)
    request = "\n".join((verb.upper(), path, query, canon_headers, signed, body_hash))
    scope = "/".join(credential[1:])
    to_sign = "\n".join(("AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(request.encode()).hexdigest()))
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def signature(secret: str, creds: Mapping[str, Any]) -> str:
    """The signature of the request described by ``creds`` (Keystone's ec2tokens body)."""
    params: dict[str, Any] = dict(creds.get("params") or {})
    headers: dict[str, str] = {str(k): str(v) for k, v in (creds.get("headers") or {}).items()}
    verb, host, path = str(creds.get("verb", "")), str(creds.get("host", "")), str(creds.get("path", ""))
    version = params.get("SignatureVersion")
    if version is not None:
        version = str(version)
    if version == "0":
        return _b64hmac(secret, _b(params.get("Action", "")) + _b(params.get("Timestamp", "")), hashlib.sha1)
    if version == "1":
        msg = b"".join(_b(k) + _b(params[k]) for k in sorted(params, key=str.lower))
        return _b64hmac(secret, msg, hashlib.sha1)
    if version == "2":
        digest = hashlib.sha1 if params.get("SignatureMethod") == "HmacSHA1" else hashlib.sha256
        msg = f"{verb}\n{host}\n{path}\n{canonical_query(params)}".encode()
        return _b64hmac(secret, msg, digest)
    if _is_v4(params, headers):
        return _v4(secret, verb, path, params, headers, str(creds.get("body_hash", "")))
    if version is not None:
        raise UnauthorizedError(f"EC2 signature version {version} is not supported (0, 1, 2 or 4)")
    raise UnauthorizedError("EC2 signature: no SignatureVersion and no AWS4-HMAC-SHA256 authorization")


def verify(secret: str, creds: Mapping[str, Any]) -> None:
    """Raise UnauthorizedError unless the signature matches (with the host's port or, as some client
    libraries sign, without it) and the request is not older than AUTH_TTL."""
    given = creds.get("signature")
    if not isinstance(given, str) or not given:
        raise UnauthorizedError("EC2 signature not supplied.")
    ok = hmac.compare_digest(_b(signature(secret, creds)), _b(given))
    host = str(creds.get("host", ""))
    if not ok and ":" in host:
        ok = hmac.compare_digest(_b(signature(secret, {**creds, "host": host.split(":")[0]})), _b(given))
    if not ok:
        raise UnauthorizedError("Invalid EC2 signature.")
    _check_timestamp(creds)


def _parse_time(value: str) -> datetime:
    for fmt in ("%Y%m%dT%H%M%SZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UnauthorizedError(f"Credential timestamp is invalid: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _check_timestamp(creds: Mapping[str, Any]) -> None:
    params = creds.get("params") or {}
    headers = creds.get("headers") or {}
    stamp = params.get("Timestamp") or headers.get("X-Amz-Date") or params.get("X-Amz-Date")
    if not stamp:
        return  # the signer left the time out of what it signed (Keystone accepts that too)
    if datetime.now(UTC) > _parse_time(str(stamp)) + AUTH_TTL:
        raise UnauthorizedError("Credential is expired.")
