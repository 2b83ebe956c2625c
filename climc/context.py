"""What every climc command gets as ``ctx.obj`` (its own module so climc.group, the REPL and completion
share it without importing one another)."""
from __future__ import annotations

from typing import Any


class ClimcContext:
    """What every command gets as ``ctx.obj``: options, output settings, a lazily built client."""

    transport: Any = None  # an httpx transport for every client (unit tests: httpx.MockTransport)
    shared: dict[tuple[Any, ...], Any] | None = None  # the REPL: one client per set of login options

    def __init__(self, **opts: Any) -> None:
        self.opts = opts
        self.output_format: str = opts.get("output_format") or "table"
        self.columns: tuple[str, ...] = ()
        self._client: Any = None

    @property
    def debug(self) -> bool:
        return bool(self.opts.get("debug"))

    def client(self) -> Any:
        if self._client is None and self.shared is not None:
            key = tuple(sorted((k, str(v)) for k, v in self.opts.items() if k.startswith("os_") or k == "insecure"))
            self._client = self.shared.get(key)
            if self._client is None:
                self._client = self.shared[key] = self._new_client()
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        from core.client import AuthOptions, Client

        o = self.opts
        auth = AuthOptions.from_env()
        for attr, key in (("auth_url", "os_auth_url"), ("username", "os_username"),
                          ("password", "os_password"), ("project_name", "os_project_name"),
                          ("project_domain", "os_project_domain"), ("user_domain", "os_user_domain"),
                          ("region", "os_region_name"), ("token", "os_auth_token"),
                          ("interface", "os_endpoint_type")):
            if o.get(key):
                setattr(auth, attr, o[key])
        if o.get("os_system_scope"):
            auth.system_scope = True
        return Client(auth, timeout=o.get("timeout") or 30.0, insecure=bool(o.get("insecure")),
                      debug=self.debug, transport=self.transport, use_cache=self.transport is None,
                      plain_http=True)
