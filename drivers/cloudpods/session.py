"""The other controller's API over httpx: a Keystone v3 token, Cloudpods' list envelopes, errors."""
from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from drivers.base import InvalidSpec, ProviderAuthError, ProviderError

COMPUTE = "/api/s/compute_v2"
IDENTITY = "/api/s/identity/v3"
IMAGE = "/api/s/image/v1"
TOKEN_TTL_S = 1800.0  # re-login well before a token expires


class Remote:
    """One account on another controller: ``access_url``, ``account`` (user), ``secret`` (password),
    ``options.project`` (default system), ``options.domain`` (default Default)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.url = str(config.get("access_url") or "").rstrip("/")
        self.user = str(config.get("account") or "")
        self.password = str(config.get("secret") or "")
        opts = config.get("options") or {}
        self.options: Mapping[str, Any] = opts if isinstance(opts, Mapping) else {}
        if not self.url.startswith(("http://", "https://")):
            raise InvalidSpec("cloudpods: the account needs the other controller's URL (access_url)")
        if not self.user or not self.password:
            raise InvalidSpec("cloudpods: the account needs a user (account) and a password (secret)")
        self.project = str(self.options.get("project") or "system")
        self.domain = str(self.options.get("domain") or "Default")
        self._http = httpx.Client(base_url=self.url, timeout=60, verify=bool(self.options.get("verify_tls", True)))
        self._token = ""
        self._token_at = 0.0

    def close(self) -> None:
        self._http.close()

    def login(self) -> str:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": self.user, "password": self.password, "domain": {"name": self.domain}}}},
            "scope": {"project": {"name": self.project, "domain": {"name": self.domain}}}}}
        try:
            r = self._http.post(f"{IDENTITY}/auth/tokens", json=body)
        except httpx.HTTPError as exc:
            raise ProviderError(f"cloudpods: cannot reach {self.url}: {exc}") from None
        if r.status_code == 401:
            raise ProviderAuthError(f"cloudpods {self.url}: user {self.user} was refused: {_msg(r)}")
        if r.status_code >= 400:
            raise ProviderError(f"cloudpods {self.url}: login failed ({r.status_code}): {_msg(r)}")
        self._token, self._token_at = r.headers.get("x-subject-token", ""), time.monotonic()
        return self._token

    def request(self, method: str, path: str, **kw: Any) -> Any:
        if not self._token or time.monotonic() - self._token_at > TOKEN_TTL_S:
            self.login()
        try:
            r = self._http.request(method, path, headers={"X-Auth-Token": self._token}, **kw)
        except httpx.HTTPError as exc:
            raise ProviderError(f"cloudpods {method} {path}: {exc}") from None
        if r.status_code == 401:
            raise ProviderAuthError(f"cloudpods {method} {path}: refused: {_msg(r)}")
        if r.status_code == 404:
            raise LookupError(f"cloudpods {path}: not found")
        if r.status_code >= 400:
            raise ProviderError(f"cloudpods {method} {path} ({r.status_code}): {_msg(r)}")
        return r.json() if r.content else {}

    def page(self, path: str, key: str, offset: int, limit: int, **params: Any) -> tuple[list[dict[str, Any]], int]:
        """One page of a list and the next offset (0: no more)."""
        out = self.request("GET", path, params={"limit": limit, "offset": offset, "details": "true", **params})
        items = list(out.get(key) or [])
        total = int(out.get("total") or 0)
        nxt = offset + len(items)
        return items, (nxt if items and nxt < total else 0)

    def all(self, path: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            items, offset = self.page(path, key, offset, 1000, **params)
            yield from items
            if not offset:
                return


def _msg(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:300]
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err.get("details") or err)[:500]
    return str(body.get("details") or body)[:500] if isinstance(body, dict) else str(body)[:500]
