"""The one exception hierarchy of cloudpods-one.

Every error a user can see is a ``CloudpodsError``; the API renders it in Cloudpods' flat shape
``{"code", "class", "details", "time"}`` (Keystone's ``{"error": {...}}`` on ``/v3`` routes) and
``core.client`` maps the same shape back to the same classes, so both ends share one table.

    CloudpodsError (500 InternalServerError)
    ├── InputParameterError (400)
    │   ├── MissingParameterError (400)
    │   ├── UnsupportedOperationError (400: the host driver lacks a capability)
    │   ├── InvalidStatusError (400)
    │   ├── InsufficientResourceError (400)
    │   └── OutOfQuotaError (400)
    ├── UnauthorizedError (401)
    ├── ForbiddenError (403)
    │   └── NotSufficientPrivilegeError (403)
    ├── ResourceNotFoundError (404)
    │   ├── ActionNotFoundError (404)
    │   └── SpecNotFoundError (404)
    ├── NotSupportedError (406)
    ├── NotEmptyError (406)
    ├── ConflictError (409)
    │   ├── DuplicateNameError (409)
    │   └── ResourceBusyError (409)
    ├── RequestTooLargeError (413)
    ├── TooManyRequests (429)
    ├── ServiceUnavailableError (503)
    └── ConnectionFailedError (client side: the controller could not be reached)
"""
from __future__ import annotations

from typing import Any, ClassVar


class CloudpodsError(Exception):
    """Base of every error we raise on purpose."""

    code: ClassVar[int] = 500
    error_class: ClassVar[str] = "InternalServerError"
    title: ClassVar[str] = "Internal Server Error"

    def __init__(self, details: str = "", **extra: Any) -> None:
        super().__init__(details or self.error_class)
        self.details = details or self.error_class
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "class": self.error_class, "details": self.details}
        body.update(self.extra)
        return body


class InputParameterError(CloudpodsError):
    code, error_class, title = 400, "InputParameterError", "Bad Request"


class MissingParameterError(InputParameterError):
    error_class = "MissingParameterError"


class UnsupportedOperationError(InputParameterError):
    """The server's host driver does not declare the capability an action needs (refused before a task)."""

    error_class = "UnsupportedOperationError"


class InvalidStatusError(InputParameterError):
    error_class = "InvalidStatusError"


class InsufficientResourceError(InputParameterError):
    error_class = "InsufficientResourceError"


class OutOfQuotaError(InputParameterError):
    error_class = "OutOfQuotaError"


class UnauthorizedError(CloudpodsError):
    code, error_class, title = 401, "UnauthorizedError", "Unauthorized"


class ForbiddenError(CloudpodsError):
    code, error_class, title = 403, "ForbiddenError", "Forbidden"


class NotSufficientPrivilegeError(ForbiddenError):
    error_class = "NotSufficientPrivilegeError"


class ResourceNotFoundError(CloudpodsError):
    code, error_class, title = 404, "ResourceNotFoundError", "Not Found"


class ActionNotFoundError(ResourceNotFoundError):
    error_class = "ActionNotFoundError"


class SpecNotFoundError(ResourceNotFoundError):
    error_class = "SpecNotFoundError"


class NotSupportedError(CloudpodsError):
    code, error_class, title = 406, "NotSupportedError", "Not Acceptable"


class NotEmptyError(CloudpodsError):
    code, error_class, title = 406, "NotEmptyError", "Not Acceptable"


class ConflictError(CloudpodsError):
    code, error_class, title = 409, "ConflictError", "Conflict"


class DuplicateNameError(ConflictError):
    error_class = "DuplicateNameError"


class ResourceBusyError(ConflictError):
    error_class = "ResourceBusyError"


class RequestTooLargeError(CloudpodsError):
    code, error_class, title = 413, "RequestTooLargeError", "Request Entity Too Large"


class TooManyRequests(CloudpodsError):
    code, error_class, title = 429, "TooManyRequests", "Too Many Requests"


class ServiceUnavailableError(CloudpodsError):
    code, error_class, title = 503, "ServiceUnavailableError", "Service Unavailable"


class ConnectionFailedError(CloudpodsError):
    """The client could not reach the controller at all."""

    code, error_class, title = 0, "ConnectionFailedError", "Connection Failed"


class ClientSetupError(CloudpodsError):
    """The client's own settings (OS_* variables, options) cannot work; the message names the fix."""

    code, error_class, title = 0, "ClientSetupError", "Client Setup Error"


def _all_subclasses(cls: type[CloudpodsError]) -> list[type[CloudpodsError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


def error_for(code: int, error_class: str | None, details: str, **extra: Any) -> CloudpodsError:
    """Rebuild the typed error from a wire reply (used by core.client)."""
    by_name = {c.error_class: c for c in _all_subclasses(CloudpodsError)}
    cls = by_name.get(error_class or "")
    if cls is None:
        by_code: dict[int, type[CloudpodsError]] = {}
        for c in _all_subclasses(CloudpodsError):
            by_code.setdefault(c.code, c)
        cls = by_code.get(code, CloudpodsError)
    err = cls(details, **extra)
    err.http_status = code  # type: ignore[attr-defined]
    return err
