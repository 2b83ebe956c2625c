"""One boto3 client factory for an AWS account's config, and the error translation."""
from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from drivers.base import InvalidSpec, ProviderAuthError, ProviderError

T = TypeVar("T")

# error codes that mean "these credentials are not accepted" (not: "this call failed")
AUTH_CODES = frozenset({"AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException",
                        "InvalidAccessKeyId", "ExpiredToken", "AccessDenied", "UnauthorizedOperation",
                        "OptInRequired", "Blocked"})


class AwsAccount:
    """Credentials + endpoint of one account (config keys: access_url, account, secret, options)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.endpoint = str(config.get("access_url") or "") or None
        self.key_id = str(config.get("account") or "")
        self.secret = str(config.get("secret") or "")
        opts = config.get("options") or {}
        self.options: Mapping[str, Any] = opts if isinstance(opts, Mapping) else {}
        if not self.key_id or not self.secret:
            raise InvalidSpec("aws: the account needs an access key id (account) and a secret")
        regions = self.options.get("regions") or []
        self.regions: tuple[str, ...] = tuple(str(r) for r in regions) if isinstance(regions, list | tuple) else ()
        self.default_region = str(self.options.get("default_region") or (self.regions[0] if self.regions
                                                                          else "us-east-1"))
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def ec2(self, region: str | None = None) -> Any:
        """The region's client. botocore clients are thread-safe once made, sessions and their
        creation are not: made under a lock, then shared by the sync's listing threads."""
        r = region or self.default_region
        c = self._clients.get(r)
        if c is None:
            with self._lock:
                c = self._clients.get(r)
                if c is None:
                    # few retries, short timeouts: a sync page that fails is recorded, not retried for minutes
                    cfg = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=10,
                                 read_timeout=60, max_pool_connections=16)
                    c = self._clients[r] = boto3.session.Session().client(
                        "ec2", region_name=r, endpoint_url=self.endpoint, aws_access_key_id=self.key_id,
                        aws_secret_access_key=self.secret, config=cfg)
        return c

    def close(self) -> None:
        for c in self._clients.values():
            try:
                c.close()
            except Exception:
                pass
        self._clients.clear()


def call(what: str, fn: Callable[..., T], **kw: Any) -> T:
    """Run one API call; AWS's errors become ProviderError / ProviderAuthError naming the code."""
    try:
        return fn(**kw)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code, msg = str(err.get("Code") or "Error"), str(err.get("Message") or exc)
        cls = ProviderAuthError if code in AUTH_CODES else ProviderError
        raise cls(f"aws {what}: {code}: {msg}") from None
    except EndpointConnectionError as exc:
        raise ProviderError(f"aws {what}: cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}") from None
    except BotoCoreError as exc:
        raise ProviderError(f"aws {what}: {exc}") from None
