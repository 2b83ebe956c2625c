"""Scheduler API (``/api/s/scheduler``): Cloudpods' ``POST /scheduler`` and ``/scheduler/forecast``.

Both take Cloudpods' flat ``ScheduleInput`` (bare, or wrapped as ``{"scheduler": {...}}``) and
answer from the snapshot the region registered (``core.scheduler.provider``). ``/scheduler``
returns ``{"candidates": [...]}`` and reserves nothing: servers are claimed by the region's
create path (``claims.place_and_claim``), which writes the DB under the generation guard.
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import ValidationError

import core.keystone.policies.scheduler  # noqa: F401  (registers the rules)
from core.api.deps import CredentialDep
from core.errors import InputParameterError
from core.keystone.policy import enforce
from core.scheduler.errors import ScheduleInputError
from core.scheduler.provider import get_snapshot, resolve_refs
from core.scheduler.request import ScheduleInput

router = APIRouter(tags=["scheduler"])


def unwrap(body: Any) -> dict[str, Any]:
    if isinstance(body, dict) and isinstance(body.get("scheduler"), dict):
        body = body["scheduler"]
    if not isinstance(body, dict):
        raise InputParameterError("body must be a JSON object (ScheduleInput)")
    return body


def parse_input(body: Any) -> ScheduleInput:
    """Validate a request body; a bad field becomes a 400 naming it."""
    body = unwrap(body)
    try:
        return ScheduleInput.model_validate(body)
    except ValidationError as exc:
        msgs = []
        for e in exc.errors()[:5]:
            field = ".".join(str(p) for p in e.get("loc", ())) or "body"
            msgs.append(f"{field}: {e.get('msg', 'invalid')}")
        raise InputParameterError("; ".join(msgs), field=_first_field(exc)) from None


def _first_field(exc: ValidationError) -> str:
    errs = exc.errors()
    return ".".join(str(p) for p in errs[0].get("loc", ())) if errs else ""


def _dry_run(request: Request, cred: Any, body: Any) -> Any:
    body = unwrap(body)
    db = getattr(request.app.state, "db", None)  # None: a scheduler alone (tests), ids only
    if db is not None:
        with db.session() as session:
            body = resolve_refs(session, cred, body)
    req = parse_input(body)
    from core.scheduler.engine import forecast as run_forecast  # numpy loads at the first use

    try:
        return run_forecast(req, get_snapshot())
    except ScheduleInputError as exc:
        raise InputParameterError(str(exc), field=exc.field) from None


@router.post("/scheduler")
def schedule(request: Request, cred: CredentialDep, body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    """Where would these servers go? One candidate per instance, ``error`` where none fits."""
    enforce(cred, "scheduler:scheduler:perform")
    return _dry_run(request, cred, body).to_candidates()  # type: ignore[no-any-return]


@router.post("/scheduler/forecast")
def forecast(request: Request, cred: CredentialDep, body: Annotated[Any, Body()] = None) -> dict[str, Any]:
    """Dry run: can they be created, how many fit, and per filter how many hosts it removed."""
    enforce(cred, "scheduler:scheduler:forecast")
    return _dry_run(request, cred, body).to_forecast()  # type: ignore[no-any-return]
