"""Login and token validation: turn credentials or a token into a ``Credential``."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.errors import ForbiddenError, InputParameterError, UnauthorizedError
from core.keystone import app_creds
from core.keystone.app_creds import RuleTuple
from core.keystone.assignments import SYSTEM, begin_write, bump_revision, current_revision, effective_roles
from core.keystone.models import ApplicationCredential, Domain, Project, RevokedToken, User
from core.keystone.passwords import DUMMY_HASH, verify_password
from core.keystone.refs import find_domain, find_in_domain
from core.keystone.tokens import TokenCodec, TokenPayload, new_audit_id

# admin ⊃ member ⊃ reader: Keystone's default implied roles, seeded as ks_implied_roles rows
IMPLIED_ROLES = {"admin": ("member", "reader"), "member": ("reader",)}
AUTH_FAILED = "The request you have made requires authentication."
# How often a replica asks the database whether anything invalidated cached tokens: the bound on how
# long a token revoked (or a role removed) on another replica stays usable here.
REVISION_POLL_S = 1.0
CACHE_MAX = 50_000
# Keystone's "admin project" (``[resource] admin_project_name``), Cloudpods' ``system`` project: a token
# scoped to it carries ``is_admin_project`` and its roles reach the whole cloud, as a system-scoped
# token's do. That is how ``rc_admin`` (project-scoped, for clients that know no system scope) works.
ADMIN_PROJECT_DOMAIN, ADMIN_PROJECT_NAME = "default", "system"


@dataclass(frozen=True)
class KeystoneCredential(Credential):
    """A Credential that also knows whether it is scoped to the admin project."""

    is_admin_project: bool = False
    # a token from an application credential (Keystone's token["application_credential"])
    app_cred_id: str = ""
    app_cred_name: str = ""
    app_cred_unrestricted: bool = False
    access_rules: tuple[RuleTuple, ...] = ()


def role_names_for(session: Session, user_id: str, target_type: str, target_id: str) -> list[tuple[str, str]]:
    """Effective (role id, role name) of a user on a target (direct, via groups, implied expanded)."""
    return effective_roles(session, user_id, target_type, target_id)


class Authenticator:
    def __init__(self, codec: TokenCodec, lifetime_s: int = 3600,
                 lockout_failures: int = 6, lockout_seconds: int = 1800) -> None:
        self.codec = codec
        self.lifetime_s = lifetime_s
        self.lockout_failures = lockout_failures
        self.lockout_seconds = lockout_seconds
        self._cache: dict[str, tuple[float, Credential]] = {}
        self._lock = threading.Lock()
        self._revision: tuple[int, int] = (-1, -1)
        self._polled_at = 0.0

    # ---- login -------------------------------------------------------------------------------
    def login(self, session: Session, body: dict[str, Any]) -> tuple[str, Credential]:
        auth = body.get("auth") if isinstance(body, dict) else None
        if not isinstance(auth, dict) or not isinstance(auth.get("identity"), dict):
            raise InputParameterError("auth.identity is required")
        identity = auth["identity"]
        methods = identity.get("methods")
        if not isinstance(methods, list) or not methods:
            raise InputParameterError("auth.identity.methods must be a non-empty list")
        chain: tuple[str, ...] = ()
        inherited: tuple[str, ...] = ()  # a rescoped token keeps the methods that proved who it is
        base_scope: tuple[str, str] | None = None
        base_expires: float | None = None
        ac: ApplicationCredential | None = None
        if "password" in methods:
            user = self._check_password(session, identity.get("password"))
        elif "application_credential" in methods:
            ac = app_creds.authenticate(session, identity.get("application_credential"))
            if auth.get("scope"):
                raise UnauthorizedError("an application credential cannot request a scope: its token is "
                                        "scoped to the credential's project")
            found_user = session.get(User, ac.user_id)
            if found_user is None or not found_user.enabled:
                raise UnauthorizedError(AUTH_FAILED)
            user = found_user
            base_scope = ("project", ac.project_id)
            base_expires = ac.expires_at.timestamp() if ac.expires_at else None
        elif "token" in methods:
            tok = identity.get("token")
            if not isinstance(tok, dict) or not isinstance(tok.get("id"), str):
                raise InputParameterError("auth.identity.token.id is required")
            old = self.validate(session, tok["id"])
            if getattr(old, "app_cred_id", ""):
                raise ForbiddenError("a token from an application credential cannot be rescoped or renewed")
            found = session.get(User, old.user_id)
            if found is None or not found.enabled:
                raise UnauthorizedError(AUTH_FAILED)
            user = found
            chain = (old.audit_id, *old.audit_chain)
            inherited = old.methods
            old_id = {"project": old.project_id, "domain": old.domain_id, "system": SYSTEM}.get(old.scope)
            base_scope = (old.scope, old_id or "")
            # a rescoped token never outlives the token it came from (Keystone keeps expires_at)
            base_expires = old.expires_at.timestamp() if old.expires_at else None
        else:
            raise InputParameterError(f"unsupported auth methods {methods}")
        if ac is not None and base_scope is not None:
            scope, scope_id = base_scope
        else:
            scope, scope_id = self._resolve_scope(session, user, auth.get("scope"), default=base_scope is None)
        if base_scope is not None and scope == "unscoped":
            scope, scope_id = base_scope
        now = time.time()
        expires = now + self.lifetime_s
        if base_scope is not None and base_expires:
            expires = min(expires, base_expires)
        known = ("application_credential",) if ac is not None else ("password", "token")
        used = [m for m in (*methods, *inherited) if m in known or m in inherited]
        payload = TokenPayload(user.id, tuple(dict.fromkeys(used)),
                               scope, scope_id, now, expires, new_audit_id(), chain,
                               app_cred_id=ac.id if ac is not None else "")
        token = self.codec.encode(payload)
        return token, self._credential(session, token, payload)

    def issue_project_token(self, session: Session, user_id: str, project_id: str, methods: tuple[str, ...]
                            ) -> tuple[str, Credential]:
        """A project-scoped token for a user another way proved (an EC2 signature); 401 unless the
        user is enabled and holds a role on the enabled project."""
        now = time.time()
        payload = TokenPayload(user_id, methods, "project", project_id, now, now + self.lifetime_s, new_audit_id())
        token = self.codec.encode(payload)
        return token, self._credential(session, token, payload)

    def _check_password(self, session: Session, ref: Any) -> User:
        if not isinstance(ref, dict) or not isinstance(ref.get("user"), dict):
            raise InputParameterError("auth.identity.password.user is required")
        u = ref["user"]
        password = u.get("password")
        if not isinstance(password, str):
            raise InputParameterError("auth.identity.password.user.password is required")
        user = find_in_domain(session, User, u, "auth.identity.password.user", enabled_domain=True)
        self.check_user_password(session, user, password)
        assert user is not None
        return user

    def check_user_password(self, session: Session, user: User | None, password: str) -> None:
        """Verify a password with lockout; every failure looks and costs the same to the caller.

        Unknown, disabled, locked and wrong-password cases all pay one hash and get one message,
        so an anonymous caller learns nothing (API.md §2).
        """
        if user is None:
            verify_password(password, DUMMY_HASH)  # same cost as a real check
            raise UnauthorizedError(AUTH_FAILED)
        now = datetime.now(UTC)
        locked = user.locked_until is not None and user.locked_until > now
        ok = verify_password(password, user.password_hash)
        if locked or not ok or not user.enabled:
            if not ok and not locked:
                self._count_failure(session, user.id, now)
            raise UnauthorizedError(AUTH_FAILED)
        if user.failed_logins or user.locked_until is not None:
            begin_write(session)
            session.execute(update(User).where(User.id == user.id).values(failed_logins=0, locked_until=None))
            session.commit()

    def _count_failure(self, session: Session, user_id: str, now: datetime) -> None:
        # the hash took tens of milliseconds: write in a fresh transaction, counting in SQL, so
        # concurrent failures neither lose counts nor trip over a stale snapshot
        begin_write(session)
        session.execute(update(User).where(User.id == user_id).values(failed_logins=User.failed_logins + 1))
        count = session.scalar(select(User.failed_logins).where(User.id == user_id)) or 0
        if self.lockout_failures and count >= self.lockout_failures:
            session.execute(update(User).where(User.id == user_id).values(
                failed_logins=0, locked_until=now + timedelta(seconds=self.lockout_seconds)))
        session.commit()

    def _resolve_scope(self, session: Session, user: User, scope: Any, default: bool = True) -> tuple[str, str]:
        if not scope:
            if default and user.default_project_id and role_names_for(session, user.id, "project",
                                                                      user.default_project_id):
                return "project", user.default_project_id
            return "unscoped", ""
        if not isinstance(scope, dict):
            raise InputParameterError("auth.scope must be an object")
        if "project" in scope:
            p = scope["project"]
            if not isinstance(p, dict):
                raise InputParameterError("auth.scope.project must be an object")
            proj = find_in_domain(session, Project, p, "auth.scope.project")
            if proj is None or not proj.enabled or not role_names_for(session, user.id, "project", proj.id):
                raise UnauthorizedError(f"user has no access to project {p.get('name') or p.get('id')}")
            return "project", proj.id
        if "domain" in scope:
            dom = find_domain(session, scope["domain"])
            if dom is None or not dom.enabled or not role_names_for(session, user.id, "domain", dom.id):
                raise UnauthorizedError("user has no access to the requested domain")
            return "domain", dom.id
        if "system" in scope:
            if not role_names_for(session, user.id, "system", SYSTEM):
                raise UnauthorizedError("user has no access to the system scope")
            return "system", "all"
        raise InputParameterError("auth.scope must name a project, domain or system")

    # ---- validation --------------------------------------------------------------------------
    def validate(self, session: Session, token: str) -> Credential:
        """The credential of a token, from a cache kept until the token expires or anything that
        can invalidate it (revocation, role/user/project change) bumps the revision counter.
        """
        now = time.time()
        if now - self._polled_at >= REVISION_POLL_S:
            self._poll(session, now)
        hit = self._cache.get(token)  # dict reads are atomic under the GIL
        if hit is not None and hit[0] > now:
            return hit[1]
        payload = self.codec.decode(token)
        audit_ids = (payload.audit_id, *payload.audit_chain)
        if session.scalar(select(RevokedToken.audit_id).where(RevokedToken.audit_id.in_(audit_ids))):
            raise UnauthorizedError("token has been revoked")
        cred = self._credential(session, token, payload)
        with self._lock:
            if len(self._cache) >= CACHE_MAX:
                self._evict(now)
            self._cache[token] = (payload.expires_at, cred)
        return cred

    def cached(self, token: str) -> Credential | None:
        """The cached credential of ``token`` if it is still trustworthy without the database
        (the revision counter was polled less than REVISION_POLL_S ago), else None."""
        now = time.time()
        if now - self._polled_at >= REVISION_POLL_S:
            return None
        hit = self._cache.get(token)
        return hit[1] if hit is not None and hit[0] > now else None

    def _poll(self, session: Session, now: float) -> None:
        self.codec.refresh()
        rev = (current_revision(session), self.codec.generation)
        with self._lock:
            self._polled_at = now
            if rev != self._revision:
                self._revision = rev
                self._cache.clear()

    def _evict(self, now: float) -> None:
        for k in [k for k, (exp, _c) in self._cache.items() if exp <= now]:
            del self._cache[k]
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()

    def forget(self, token: str | None = None) -> None:
        with self._lock:
            if token is None:
                self._cache.clear()
            else:
                self._cache.pop(token, None)

    def changed(self, session: Session) -> None:
        """Record (in the caller's transaction) that cached tokens may be stale; commit follows."""
        bump_revision(session)
        self.forget()

    def revoke(self, session: Session, cred: Credential) -> None:
        # rows for tokens that expired anyway are useless: prune them here (no periodic job needed)
        session.execute(delete(RevokedToken).where(RevokedToken.expires_at < datetime.now(UTC)))
        if session.get(RevokedToken, cred.audit_id) is None:
            session.add(RevokedToken(audit_id=cred.audit_id, expires_at=cred.expires_at))
        bump_revision(session)
        session.commit()
        self.forget()

    def _credential(self, session: Session, token: str, p: TokenPayload) -> Credential:
        user = session.get(User, p.user_id)
        if user is None or not user.enabled:
            raise UnauthorizedError("invalid token")
        if user.revoke_before is not None and p.issued_at < user.revoke_before.timestamp():
            raise UnauthorizedError("token has been revoked")
        udom = session.get(Domain, user.domain_id)
        if udom is not None and not udom.enabled:
            raise UnauthorizedError("invalid token")
        kw: dict[str, Any] = {}
        if p.scope == "project":
            proj = session.get(Project, p.scope_id)
            if proj is None or not proj.enabled:
                raise UnauthorizedError("invalid token")
            pdom = session.get(Domain, proj.domain_id)
            if pdom is not None and not pdom.enabled:
                raise UnauthorizedError("invalid token")
            kw = {"project_id": proj.id, "project_name": proj.name, "project_domain_id": proj.domain_id,
                  "project_domain_name": pdom.name if pdom else "",
                  "is_admin_project": (proj.domain_id, proj.name) == (ADMIN_PROJECT_DOMAIN, ADMIN_PROJECT_NAME)}
            roles = role_names_for(session, user.id, "project", proj.id)
            if p.app_cred_id:
                ac = session.get(ApplicationCredential, p.app_cred_id)
                if ac is None or ac.user_id != user.id or ac.project_id != proj.id:
                    raise UnauthorizedError("invalid token: its application credential was deleted")
                roles = app_creds.limit_roles(session, ac.id, roles)
                kw.update(app_cred_id=ac.id, app_cred_name=ac.name, app_cred_unrestricted=ac.unrestricted,
                          access_rules=app_creds.rules_of(session, ac.id))
        elif p.scope == "domain":
            dom = session.get(Domain, p.scope_id)
            if dom is None or not dom.enabled:
                raise UnauthorizedError("invalid token")
            kw = {"domain_id": dom.id, "domain_name": dom.name}
            roles = role_names_for(session, user.id, "domain", dom.id)
        elif p.scope == "system":
            roles = role_names_for(session, user.id, "system", SYSTEM)
        else:
            roles = []
        if p.scope != "unscoped" and not roles:
            raise UnauthorizedError("invalid token: no roles on its scope any more")
        return KeystoneCredential(
            token=token, user_id=user.id, user_name=user.name, user_domain_id=user.domain_id,
            user_domain_name=udom.name if udom else "", scope=p.scope,
            roles=tuple(n for _i, n in roles), role_ids=tuple(i for i, _n in roles),
            methods=p.methods, audit_id=p.audit_id, audit_chain=p.audit_chain,
            issued_at=p.issued, expires_at=p.expires, **kw,
        )


def set_user_password(user: User, password_hash: str) -> None:
    """New hash (made by ``hash_password`` before the caller took the write lock), lockout cleared,
    every token issued before now revoked (as Keystone does on a password change). The caller bumps
    the token revision and commits."""
    now = datetime.now(UTC)
    user.password_hash = password_hash
    user.password_changed_at = now
    user.revoke_before = now
    user.failed_logins = 0
    user.locked_until = None


def find_user_by_name(session: Session, name: str, domain: str = "default") -> User | None:
    return session.scalar(select(User).join(Domain, Domain.id == User.domain_id)
                          .where(User.name == name, or_(Domain.id == domain, Domain.name == domain)))
