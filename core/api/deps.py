"""FastAPI dependencies every router uses: ``SessionDep``, ``CredentialDep``, ``RequestIdDep``.

Handlers that change data call ``session.commit()`` themselves before returning, so a failed
commit becomes the reply (the dependency's own commit at exit is then a no-op).
"""
from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from core.api.context import Credential
from core.db.engine import committed
from core.errors import ForbiddenError, UnauthorizedError
from core.keystone.app_creds import request_allowed


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request. Opening one does no I/O, so this runs on the event loop: a sync
    generator dependency costs two thread-pool hops per request. The closing commit/rollback is
    short (the handler already committed its own work), so it runs here too."""
    with committed(request.app.state.db.sessionmaker()) as s:
        yield s


# The session ends (its closing commit) before the answer goes out, so a commit that fails is the answer
# (a 503 while the database is down). FastAPI's default for a yield dependency is to end it after the
# answer was sent: a closing commit that failed then (the database went away after a read) raised past
# a finished response, and uvicorn dropped the keep-alive connection that answer went out on, so the
# client's next request on it failed with a reset instead of a 503 (seen: tests/integration/test_faults'
# database restart under load). ``scope`` is FastAPI >= 0.121; 0.106-0.117 end it before the answer anyway.
_SESSION_SCOPE = {"scope": "function"} if "scope" in inspect.signature(Depends).parameters else {}
SessionDep = Annotated[Session, Depends(get_session, **_SESSION_SCOPE)]


def get_request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


RequestIdDep = Annotated[str, Depends(get_request_id)]


def token_from(request: Request) -> str | None:
    tok = request.headers.get("x-auth-token")
    if not tok:
        authz = request.headers.get("authorization", "")
        if authz[:7].lower() == "bearer ":
            tok = authz[7:].strip()
    return tok or None


def credential_of_token(request: Request, tok: str) -> Credential:
    with request.app.state.db.session() as s:
        cred: Credential = request.app.state.auth.validate(s, tok)
        return cred


async def get_credential(request: Request) -> Credential:
    """The caller's validated token. A cache hit costs no thread hop and no database session
    (token validation is on every request's path); a miss validates in the thread pool."""
    tok = token_from(request)
    if not tok:
        raise UnauthorizedError("missing X-Auth-Token")
    cred = request.app.state.auth.cached(tok)
    if cred is None:
        cred = await run_in_threadpool(credential_of_token, request, tok)
    rules = getattr(cred, "access_rules", ())
    if rules and not request_allowed(rules, request.method, request.scope["path"]):
        # Keystone's access rules (application credentials): the token may call only what they list
        raise ForbiddenError(f"this application credential's access rules do not allow {request.method} "
                             f"{request.scope['path']}")
    return cred.for_request(get_request_id(request))


CredentialDep = Annotated[Credential, Depends(get_credential)]
