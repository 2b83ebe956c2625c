"""The one HTTP client (httpx) for climc, ocadm, the agent and tests.

    c = Client.from_env()                       # OS_* variables, like every OpenStack tool
    c.get("compute_v2", "/servers", params={"limit": 20})
    c.post("compute_v2", "/servers", json={"server": {...}})

Authenticates with Keystone v3 (password or a given token), finds each service in the catalog
(region + interface), reuses the token until shortly before expiry (cached 0600 under the user's
cache dir), retries on connection errors only, and turns error replies into ``core.errors``
exceptions. ``debug=True`` prints each request as curl to stderr with the token redacted.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any


def _import_httpx():  # type: ignore[no-untyped-def]
    # httpx imports its own CLI (rich + pygments, ~50 ms) whenever they are installed; we never
    # use it, and every climc call pays for imports, so hide that one module during the import.
    if "httpx" not in sys.modules and "httpx._main" not in sys.modules:
        sys.modules["httpx._main"] = None  # type: ignore[assignment]
        try:
            import httpx
        finally:
            del sys.modules["httpx._main"]
        return httpx
    import httpx

    return httpx


if TYPE_CHECKING:
    import httpx
else:
    httpx = _import_httpx()

from core.errors import (  # noqa: E402
    ClientSetupError,
    CloudpodsError,
    ConnectionFailedError,
    UnauthorizedError,
    error_for,
)
from core.version import VERSION  # noqa: E402

USER_AGENT = f"cloudpods-one/{VERSION}"
_RETRIES = 3


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cloudpods-one"


# the values OpenStack's and Cloudpods' rc files use for an endpoint type, as catalog interfaces
_INTERFACES = {"publicurl": "public", "internalurl": "internal", "adminurl": "admin", "apigateway": "public",
               "public": "public", "internal": "internal", "admin": "admin"}


def normalize_interface(value: str) -> str:
    """``publicURL``/``internalURL``/``adminURL`` (and any case) -> ``public``/``internal``/``admin``."""
    v = (value or "public").strip()
    iface = _INTERFACES.get(v.lower())
    if iface is None:
        raise ClientSetupError(f"endpoint type {value!r} is not one of public, internal, admin (or publicURL, "
                               "internalURL, adminURL): fix OS_ENDPOINT_TYPE / OS_INTERFACE or --os-endpoint-type")
    return iface


def check_auth_url(url: str) -> str:
    """A usable identity URL, or an error naming OS_AUTH_URL and what it should look like."""
    u = url.strip()
    example = "e.g. http://127.0.0.1:30300/api/s/identity/v3 (`source rc_admin` sets it)"
    if not u:
        raise ClientSetupError(f"no auth URL: set OS_AUTH_URL or pass --os-auth-url, {example}")
    try:
        parsed = httpx.URL(u)
    except Exception:  # httpx.InvalidURL and friends
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ClientSetupError(f"OS_AUTH_URL={u} is not an http(s) URL: set it to the identity endpoint, {example}")
    return u


@dataclass
class AuthOptions:
    auth_url: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    project_name: str = ""
    project_id: str = ""
    project_domain: str = "Default"
    user_domain: str = "Default"
    domain_name: str = ""  # domain scope
    system_scope: bool = False
    region: str = ""
    interface: str = "public"
    token: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> AuthOptions:
        e = os.environ if env is None else env
        iface = normalize_interface(e.get("OS_INTERFACE") or e.get("OS_ENDPOINT_TYPE") or "public")
        return cls(
            auth_url=e.get("OS_AUTH_URL", ""),
            username=e.get("OS_USERNAME", ""),
            password=e.get("OS_PASSWORD", ""),
            project_name=e.get("OS_PROJECT_NAME", "") or e.get("OS_TENANT_NAME", ""),
            project_id=e.get("OS_PROJECT_ID", ""),
            project_domain=e.get("OS_PROJECT_DOMAIN_NAME") or e.get("OS_PROJECT_DOMAIN") or "Default",
            user_domain=e.get("OS_USER_DOMAIN_NAME") or e.get("OS_DOMAIN_NAME") or "Default",
            domain_name=e.get("OS_DOMAIN_SCOPE", ""),
            system_scope=e.get("OS_SYSTEM_SCOPE", "").lower() == "all",
            region=e.get("OS_REGION_NAME", ""),
            interface=iface,
            token=e.get("OS_AUTH_TOKEN", ""),
        )

    def cache_key(self) -> str:
        ident = "|".join([self.auth_url, self.username, self.user_domain, self.project_name, self.project_id,
                          self.project_domain, self.domain_name, str(self.system_scope),
                          hashlib.sha256(self.password.encode()).hexdigest()])
        return hashlib.sha256(ident.encode()).hexdigest()[:32]


class Client:
    def __init__(self, auth: AuthOptions, *, timeout: float = 30.0, insecure: bool = False,
                 debug: bool = False, use_cache: bool = True, transport: Any = None,
                 plain_http: bool = False) -> None:
        auth.auth_url = check_auth_url(auth.auth_url)
        auth.interface = normalize_interface(auth.interface)
        self.auth = auth
        self.debug = debug
        self.use_cache = use_cache and not auth.token
        self._timeout = timeout
        self._insecure = insecure
        self._transport = transport  # an httpx transport (tests: httpx.MockTransport); None = the network
        # http:// through core.plain_http (the standard library's HTTP/1.1) instead of httpcore: for
        # one-shot processes (climc), where importing httpcore costs more than the request
        self._plain_http = plain_http
        self._clients: dict[str, httpx.Client] = {}
        self._token: str = auth.token
        self._token_body: dict[str, Any] | None = None
        self._expires: float = 0.0

    @classmethod
    def from_env(cls, **kwargs: Any) -> Client:
        return cls(AuthOptions.from_env(), **kwargs)

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def _http(self, url: str) -> httpx.Client:
        """One pooled client per scheme: building a TLS context costs ~40 ms, so plain-HTTP
        controllers (the embedded default) never pay for it."""
        scheme = "https" if url.startswith("https:") else "http"
        c = self._clients.get(scheme)
        if c is None:
            verify = (not self._insecure) if scheme == "https" else False  # no TLS on http://
            transport = self._transport
            if transport is None and scheme == "http" and self._plain_http:
                from core.plain_http import PlainHTTPTransport

                transport = PlainHTTPTransport()
            c = httpx.Client(timeout=self._timeout, verify=verify, headers={"User-Agent": USER_AGENT},
                             transport=transport)
            self._clients[scheme] = c
        return c

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- auth --------------------------------------------------------------------------------
    def _cache_path(self) -> Path:
        return cache_dir() / "tokens" / f"{self.auth.cache_key()}.json"

    def _load_cached(self) -> bool:
        try:
            data = json.loads(self._cache_path().read_text())
        except (OSError, ValueError):
            return False
        if data.get("expires", 0) - 60 < time.time():
            return False
        self._token, self._token_body, self._expires = data["token"], data["body"], data["expires"]
        return True

    def _store_cached(self) -> None:
        p = self._cache_path()
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(p.parent, 0o700)
            tmp = p.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"token": self._token, "body": self._token_body, "expires": self._expires}, f)
            os.replace(tmp, p)
        except OSError:
            pass  # a cache we cannot write only costs a login

    def _forget_cached(self) -> None:
        try:
            self._cache_path().unlink()
        except OSError:
            pass

    def _auth_body(self) -> dict[str, Any]:
        a = self.auth
        if a.token:
            identity: dict[str, Any] = {"methods": ["token"], "token": {"id": a.token}}
        else:
            if not a.username:
                raise ClientSetupError("no user name: set OS_USERNAME or pass --os-username (or OS_AUTH_TOKEN)")
            identity = {"methods": ["password"], "password": {"user": {
                "name": a.username, "password": a.password, "domain": {"name": a.user_domain}}}}
        body: dict[str, Any] = {"auth": {"identity": identity}}
        if a.system_scope:
            body["auth"]["scope"] = {"system": {"all": True}}
        elif a.project_id:
            body["auth"]["scope"] = {"project": {"id": a.project_id}}
        elif a.project_name:
            body["auth"]["scope"] = {"project": {"name": a.project_name, "domain": {"name": a.project_domain}}}
        elif a.domain_name:
            body["auth"]["scope"] = {"domain": {"name": a.domain_name}}
        return body

    def login(self, force: bool = False) -> dict[str, Any]:
        """Return the token body (``{"token": {...}}``), logging in if needed."""
        if not force and self._token_body and self._expires - 60 > time.time():
            return self._token_body
        if not force and self.use_cache and self._load_cached():
            return self._token_body  # type: ignore[return-value]
        base = self.auth.auth_url.rstrip("/")
        url = base + "/auth/tokens"
        try:
            resp = self._send("POST", url, json_body=self._auth_body(), auth=False)
        except UnauthorizedError as e:
            raise UnauthorizedError(self._login_refused(e.details)) from None
        except CloudpodsError as e:
            if getattr(e, "code", 0) not in (404, 405):
                raise
            hint = (f"set it to {base}/v3" if not base.endswith("/v3") else
                    "is it the identity endpoint? e.g. http://HOST:PORT/api/s/identity/v3")
            raise ClientSetupError(f"OS_AUTH_URL={self.auth.auth_url} has no Keystone v3 token API "
                                   f"(POST {url} answered {e.code}): {hint}") from None
        self._token = resp.headers.get("x-subject-token", "")
        self._token_body = resp.json()
        exp = self._token_body.get("token", {}).get("expires_at")
        self._expires = datetime.fromisoformat(exp.replace("Z", "+00:00")).timestamp() if exp else time.time() + 300
        if self.use_cache:
            self._store_cached()
        return self._token_body

    def _login_refused(self, details: str) -> str:
        """Keystone's 401 says only "requires authentication": name what was sent and what to check."""
        a = self.auth
        said = "" if "requires authentication" in details else f"{details}; "
        if a.token:
            return f"{said}OS_AUTH_TOKEN was refused (expired or revoked): unset it to log in with OS_USERNAME"
        scope = ("system" if a.system_scope else f"project {a.project_id}" if a.project_id else
                 f"project {a.project_name} (domain {a.project_domain})" if a.project_name else "no scope")
        return (f"{said}login of OS_USERNAME={a.username} (domain {a.user_domain}, {scope}) refused: check "
                "OS_PASSWORD and OS_PROJECT_NAME (`source rc_admin` sets them)")

    @property
    def token(self) -> str:
        self.login()
        return self._token

    def catalog(self) -> list[dict[str, Any]]:
        return list(self.login().get("token", {}).get("catalog", []))

    def endpoint(self, service_type: str) -> str:
        if service_type == "identity":
            return self.auth.auth_url.rstrip("/")
        region, iface = self.auth.region, self.auth.interface
        for svc in self.catalog():
            if svc.get("type") != service_type:
                continue
            eps = [e for e in svc.get("endpoints", []) if e.get("interface") == iface]
            if region:
                eps = [e for e in eps if region in (e.get("region_id"), e.get("region"))]
            if eps:
                return str(eps[0]["url"]).rstrip("/")
        body = self.login().get("token", {})
        if not body.get("catalog") and not any(k in body for k in ("project", "domain", "system")):
            raise ClientSetupError("the token has no scope, so no service catalog: set OS_PROJECT_NAME (e.g. "
                                   "system for the admin; or OS_PROJECT_ID, or OS_SYSTEM_SCOPE=all)")
        where = f" in region {region}" if region else ""
        regions = sorted({str(e.get("region_id") or e.get("region") or "") for svc in self.catalog()
                          if svc.get("type") == service_type for e in svc.get("endpoints", [])} - {""})
        fix = (f": OS_REGION_NAME={region} is not one of {', '.join(regions)}" if region and regions and
               region not in regions else ": try OS_ENDPOINT_TYPE=public (--os-endpoint-type)")
        raise ClientSetupError(f"service {service_type} ({iface}) not found in the catalog{where}{fix}")

    # ---- requests ----------------------------------------------------------------------------
    def request(self, method: str, service_type: str, path: str, *, json: Any = None,
                params: Any = None, headers: dict[str, str] | None = None,
                content: Any = None) -> httpx.Response:
        url = self.endpoint(service_type) + path
        try:
            return self._send(method, url, json_body=json, params=params, headers=headers, content=content)
        except UnauthorizedError:
            if self.auth.token:
                raise
            self._forget_cached()  # token revoked or keys rotated: log in once more
            self.login(force=True)
            return self._send(method, url, json_body=json, params=params, headers=headers, content=content)

    def get(self, service: str, path: str, params: Any = None) -> Any:
        return _json(self.request("GET", service, path, params=params))

    def post(self, service: str, path: str, json: Any = None, params: Any = None) -> Any:
        return _json(self.request("POST", service, path, json=json, params=params))

    def put(self, service: str, path: str, json: Any = None) -> Any:
        return _json(self.request("PUT", service, path, json=json))

    def patch(self, service: str, path: str, json: Any = None) -> Any:
        return _json(self.request("PATCH", service, path, json=json))

    def delete(self, service: str, path: str, params: Any = None) -> Any:
        return _json(self.request("DELETE", service, path, params=params))

    def websocket(self, url: str, *, headers: dict[str, str] | None = None, auth: bool = True,
                  subprotocols: list[str] | None = None, open_timeout: float = 10.0) -> Any:
        """A blocking websocket (``websockets.sync``) to ``url`` (http(s):// or ws(s)://), with this
        client's token unless ``auth`` is False. Refused handshakes become our errors (401, 403, ...)."""
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        ws_url = "ws" + url[4:] if url.startswith("http") else url
        hdrs = dict(headers or {})
        if auth:
            hdrs["X-Auth-Token"] = self.token
        ssl_ctx = None
        if ws_url.startswith("wss:") and self._insecure:
            import ssl

            ssl_ctx = ssl._create_unverified_context()
        try:
            # __enter__ opens it on every websockets version (newer ones connect lazily in it); the
            # caller closes the connection it gets
            return connect(ws_url, additional_headers=hdrs, subprotocols=subprotocols,  # type: ignore[arg-type]
                           open_timeout=open_timeout, compression=None, max_size=None, ssl=ssl_ctx).__enter__()
        except InvalidStatus as e:
            body = bytes(e.response.body or b"")
            raise to_error(httpx.Response(e.response.status_code, content=body,
                                           headers={"content-type": "application/json"})) from None
        except (OSError, TimeoutError, WebSocketException) as e:
            raise ConnectionFailedError(f"cannot open a websocket to {_origin(url)}: {_reason(e)}") from None

    @contextmanager
    def stream(self, method: str, service_type: str, path: str, **kw: Any) -> Iterator[httpx.Response]:
        url = self.endpoint(service_type) + path
        headers = {"X-Auth-Token": self.token, **kw.pop("headers", {})}
        self._print_curl(method, url, headers, None)
        try:
            with self._http(url).stream(method, url, headers=headers, **kw) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise to_error(resp)
                yield resp
        except httpx.TransportError as e:
            raise ConnectionFailedError(f"cannot reach {_origin(url)}: {_reason(e)}") from None

    def _send(self, method: str, url: str, *, json_body: Any = None, params: Any = None,
              headers: dict[str, str] | None = None, content: Any = None, auth: bool = True) -> httpx.Response:
        hdrs = dict(headers or {})
        if auth:
            hdrs["X-Auth-Token"] = self.token
        self._print_curl(method, url, hdrs, json_body, params)
        last: Exception | None = None
        for attempt in range(_RETRIES):
            try:
                resp = self._http(url).request(method, url, json=json_body, params=params, headers=hdrs,
                                               content=content)
                break
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:  # nothing was sent: safe to retry
                last = e
                time.sleep(0.2 * (attempt + 1))
            except httpx.TransportError as e:
                raise ConnectionFailedError(f"request to {_origin(url)} failed: {_reason(e)}") from None
        else:
            raise ConnectionFailedError(f"cannot reach {_origin(url)}: {_reason(last)}")
        if self.debug:
            print(f"# -> {resp.status_code} {resp.reason_phrase} ({resp.elapsed.total_seconds()*1000:.0f} ms)",
                  file=sys.stderr)
        if resp.status_code >= 400:
            raise to_error(resp)
        return resp

    def _print_curl(self, method: str, url: str, headers: dict[str, str], body: Any, params: Any = None) -> None:
        if not self.debug:
            return
        if params:
            url = str(httpx.URL(url, params=params))
        parts = ["curl", "-X", method, url]
        for k, v in headers.items():
            parts += ["-H", f"{k}: {'***' if k.lower() == 'x-auth-token' else v}"]
        if body is not None:
            parts += ["-d", json.dumps(_redact(body))]
        import shlex  # --debug only

        print(" ".join(shlex.quote(p) for p in parts), file=sys.stderr)


def _redact(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: ("***" if k in ("password", "secret", "token") or k.endswith("_secret") else _redact(v))
                for k, v in body.items()}
    if isinstance(body, list):
        return [_redact(v) for v in body]
    return body


def _origin(url: str) -> str:
    u = httpx.URL(url)
    return f"{u.scheme}://{u.host}:{u.port or (443 if u.scheme == 'https' else 80)}"


def _reason(e: Exception | None) -> str:
    msg = str(e) if e else "unknown error"
    if "Connection refused" in msg or "Errno 111" in msg:
        return "connection refused (is the controller running?)"
    return msg.splitlines()[0][:200] if msg else type(e).__name__


def _json(resp: httpx.Response) -> Any:
    if not resp.content:
        return {}
    try:
        return resp.json()
    except ValueError:
        return {"raw": resp.text}


def to_error(resp: httpx.Response) -> CloudpodsError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):  # Keystone shape
        e = body["error"]
        return error_for(resp.status_code, None, str(e.get("message") or e.get("title") or resp.reason_phrase))
    if isinstance(body, dict) and ("class" in body or "details" in body):
        return error_for(resp.status_code, body.get("class"), str(body.get("details") or resp.reason_phrase))
    return error_for(resp.status_code, None, f"{resp.status_code} {resp.reason_phrase}")
