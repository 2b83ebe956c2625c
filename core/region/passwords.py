"""A server's login: ``server-reset-password`` (a new password, set at the guest's next boot through
its rewritten config drive) and ``server-logininfo`` (the account, and the password for its own
project's members only, each reading audited).

The password is kept sealed with the credential keys (``create_spec.login.password_sealed``, never
serialised). A running guest takes it through the qemu guest agent where its host declares
``guest_agent`` (its drive is rewritten too, so the next boot keeps it); a stopped one at its next boot.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.api.context import Credential
from core.errors import InputParameterError, InvalidStatusError
from core.region import statemachine as sm
from core.region.models import Keypair, Server
from core.tasks.engine import submit

ACCOUNT = "root"  # whose password the config drive sets (drivers/kvm/configdrive.py)


def remember(server: Server, sealed: dict[str, str]) -> None:
    """Keep the server's (sealed) password for ``server-logininfo``."""
    if sealed:
        server.create_spec = {**(server.create_spec or {}), **login_spec(sealed)}


def login_spec(sealed: dict[str, str]) -> dict[str, Any]:
    """The ``create_spec`` key that keeps a (sealed) password for ``server-logininfo`` (none without one)."""
    return {"login": {"account": ACCOUNT, **sealed}} if sealed else {}


def sealed_password(password: str | None) -> dict[str, str]:
    """The task params that carry a server's password: encrypted with the credential keys, so the
    tasks table (and its backups) never hold it in clear. Unsealed only into the agent payload."""
    if not password:
        return {}
    from core.keystone.credkeys import seal

    return {"password_sealed": seal(password)}


def unseal_password(params: dict[str, Any]) -> str | None:
    from core.keystone.credkeys import unseal

    sealed = params.get("password_sealed")
    if sealed:
        return unseal(str(sealed))
    plain = params.get("password")  # a task queued by an older controller
    return str(plain) if plain else None


def reset_password(session: Session, cred: Credential, server: Server, body: dict[str, Any]) -> None:
    from core.keystone.passwords import check_password_policy
    from core.region.guards import guard_capability, guard_host_online

    password = body.get("password")
    if not isinstance(password, str) or not password:
        raise InputParameterError("password: required (the new login password)")
    check_password_policy(password, "server password")
    if server.pending_deleted:
        raise InvalidStatusError(f"server {server.name} is in the recycle bin: cancel-delete it first")
    if not server.host_id:
        raise InvalidStatusError(f"server {server.name} is not deployed on a host")
    sm.guard_busy(server)
    if server.status not in ("ready", "running"):
        raise InvalidStatusError(f"cannot reset the password of server {server.name} in status {server.status} "
                                 "(allowed: ready: set at its next boot; running: through the qemu guest agent)")
    guard_host_online(session, server)
    guard_capability(session, server, "reset-password")
    t = submit(session, "ServerResetPasswordTask", "server", server.id, server.name, sealed_password(password),
               cred=cred, tenant_id=server.tenant_id, domain_id=server.domain_id)
    server.active_task_id = t.id


def login_info(session: Session, cred: Credential, server: Server) -> dict[str, Any]:
    """The login of ``server``; its password only for a member of its own project (the action route
    audits each reading)."""
    login = dict((server.create_spec or {}).get("login") or {})
    kp = session.get(Keypair, server.keypair_id) if server.keypair_id else None
    out: dict[str, Any] = {"username": login.get("account") or ACCOUNT, "keypair": kp.name if kp else "",
                           "keypair_id": server.keypair_id or ""}
    owner = bool(cred.project_id) and cred.project_id == server.tenant_id
    if owner and login.get("password_sealed"):
        out["password"] = unseal_password(login)
    return out
