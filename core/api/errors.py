"""Render every error in the caller's expected shape, from the one exception hierarchy.

Keystone routes (``/identity/v3``) answer ``{"error": {"code", "title", "message"}}``; every other
route answers Cloudpods' flat ``{"code", "class", "details", "time"}``. Anything unexpected is a 500
``InternalServerError`` (a bug) whose details carry the request id, never the exception text.
"""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.db.base import iso, utcnow
from core.errors import (
    CloudpodsError,
    ConflictError,
    InputParameterError,
    NotSupportedError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    UnauthorizedError,
)

log = logging.getLogger("cloudpods.api")

_HTTP_CLASS = {400: InputParameterError, 401: UnauthorizedError, 404: ResourceNotFoundError, 405: NotSupportedError}


def _now() -> str:
    return str(iso(utcnow()))


def error_response(request: Request, err: CloudpodsError, status: int | None = None) -> JSONResponse:
    status = status or err.code or 500
    body: dict[str, Any]
    if "/identity/v3" in request.url.path:
        body = {"error": {"code": status, "title": err.title, "message": err.details}}
    else:
        body = {**err.to_dict(), "code": status, "time": _now()}
    headers = {"WWW-Authenticate": 'Keystone uri="/api/s/identity/v3"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(CloudpodsError)
    async def _cloudpods(request: Request, exc: CloudpodsError) -> JSONResponse:
        if exc.code >= 500:
            log.error("request %s failed: %s", getattr(request.state, "request_id", "?"), exc.details)
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        msgs = []
        for e in exc.errors()[:5]:
            if e.get("type") == "json_invalid":
                msgs.append(f"malformed JSON body: {e.get('ctx', {}).get('error', 'invalid')}")
            else:
                msgs.append(f"{_field(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}")
        return error_response(request, InputParameterError("; ".join(msgs) or "invalid input"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        cls = _HTTP_CLASS.get(exc.status_code, CloudpodsError)
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route for {request.method} {request.url.path}"
        if exc.status_code == 405:
            detail = f"method {request.method} not allowed on {request.url.path}"
        return error_response(request, cls(detail), status=exc.status_code)

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError) -> JSONResponse:
        rid = getattr(request.state, "request_id", "?")
        log.warning("database unavailable in request %s: %s", rid, str(exc.orig)[:200])
        return error_response(request, ServiceUnavailableError("database unavailable, retry later"))

    @app.exception_handler(IntegrityError)
    async def _conflict(request: Request, exc: IntegrityError) -> JSONResponse:
        # the one place a unique/foreign-key violation becomes an answer: two writers raced past a
        # check (the same name created twice at once), or a row vanished under a reference; the
        # request lost, nothing half-written stays (its transaction rolled back)
        rid = getattr(request.state, "request_id", "?")
        log.info("integrity conflict in request %s: %s", rid, str(exc.orig)[:200])
        return error_response(request, ConflictError("the change conflicts with another one (a duplicate name, "
                                                     "or a resource changed meanwhile); retry"))

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
        # the last line of defence for a value no column can hold (an integer past 64 bits reaches
        # SQLite as OverflowError, PostgreSQL/MariaDB as DataError): the input's fault, not ours
        rid = getattr(request.state, "request_id", "?")
        log.warning("value out of range in request %s: %s", rid, str(getattr(exc, "orig", exc))[:200])
        return error_response(request, InputParameterError("a value in the request is out of range for its field"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = getattr(request.state, "request_id", "?")
        log.exception("unhandled error in request %s (%s %s)", rid, request.method, request.url.path)
        return error_response(request, CloudpodsError(f"internal error, request id {rid}"))
