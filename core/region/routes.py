"""Cloudpods' URL grammar (API.md §3) for every registered resource, built once.

    GET    /<plural>                       list          GET /<ctx>/<cid>/<plural>  context list
    GET    /<plural>/<id-or-name>          show          HEAD /<plural>/<id>        exists?
    GET    /<plural>/<id>/<spec>           detail view
    POST   /<plural>                       create (top-level "count" makes a batch)
    POST   /<plural>/<id>/<action>         action        POST /<plural>/<action>    class action
    POST   /<ctx>/<cid>/<plural>           create in a context (e.g. /zones/<z>/hosts)
    PUT|PATCH /<plural>/<id>               update        DELETE /<plural>/<id>      delete
    GET|POST|DELETE /<m>/<mid>/<s>/<sid>   joints
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response

from core.api.deps import CredentialDep, SessionDep
from core.api.listing import ListDep, ListQuery, paginate, parse_bool
from core.api.tags import tag_filter
from core.errors import ActionNotFoundError, CloudpodsError, InputParameterError, ResourceNotFoundError
from core.region.common import begin_write, json_response, unwrap
from core.region.registry import MANAGERS, get_manager

router = APIRouter()
AnyBody = Body(default=None)
MAX_BATCH = 1000


def _mgr(plural: str) -> Any:
    if plural not in MANAGERS:
        raise ResourceNotFoundError(f"no such resource type {plural}")
    return get_manager(plural)


def _held(m: Any, session: Any, cred: Any, ident: str, verb: str, op: str) -> Any:
    """Row ``ident`` of ``m`` under the write lock, once the caller may ``verb`` it and its cloud
    account allows ``op`` on it."""
    begin_write(session)
    row = m.fetch(session, cred, ident)
    m.enforce(cred, verb, row)
    m.check_cloud(row, op)
    return row


def _list(session: Any, cred: Any, m: Any, q: ListQuery, ctx: tuple[str, str] | None = None) -> Response:
    m.enforce(cred, "list")
    base, params, kept = m.visible_kept(cred, q.scope)
    stmt = base
    if ctx is not None:
        stmt = m.context_filter(session, cred, stmt, *ctx)
    stmt = tag_filter(m.list_filter(session, cred, stmt, q), m.model, q)
    page = paginate(session, stmt, m.model, q, searchable=m.searchable, columns=m.list_columns(),
                    resolve=lambda col, v: m.resolve_ref(session, cred, col, v), params=params,
                    kept=kept if stmt is base else None)  # the page's selects are kept with an unfiltered base
    items = m.to_dicts(session, page.rows, q.details)
    if q.fields:
        items = [{k: v for k, v in it.items() if k in q.fields} for it in items]
    return json_response(page.envelope(m.plural, items))


def _create(session: Any, cred: Any, m: Any, body: Any, ctx: tuple[str, str] | None = None) -> Response:
    m.enforce(cred, "create")
    count = 1
    if isinstance(body, dict) and "count" in body and m.keyword not in ("count",):
        raw = body.get("count")
        if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit():
            raise InputParameterError("count: must be a positive integer")
        count = int(raw)
        if not 1 <= count <= MAX_BATCH:
            raise InputParameterError(f"count: must be between 1 and {MAX_BATCH}")
    data = unwrap(body, m.keyword)
    begin_write(session)
    rows = m.create(session, cred, data, count, ctx)
    session.flush()
    items = m.to_dicts(session, rows, True)
    session.commit()
    if isinstance(body, dict) and "count" in body:
        return json_response({m.plural: [{"status": 200, "body": it} for it in items]})
    return json_response({m.keyword: items[0]})


@router.get("/{plural}")
def list_resources(plural: str, session: SessionDep, cred: CredentialDep, q: ListDep) -> Response:
    return _list(session, cred, _mgr(plural), q)


@router.post("/{plural}")
def create_resource(plural: str, session: SessionDep, cred: CredentialDep, body: Any = AnyBody) -> Response:
    return _create(session, cred, _mgr(plural), body)


@router.get("/{plural}/{ident}")
def get_resource(plural: str, ident: str, session: SessionDep, cred: CredentialDep) -> Response:
    m = _mgr(plural)
    row = m.fetch(session, cred, ident)
    m.enforce(cred, "get", row)
    return json_response({m.keyword: m.to_dict(session, row)})


@router.head("/{plural}/{ident}")
def head_resource(plural: str, ident: str, session: SessionDep, cred: CredentialDep) -> Response:
    m = _mgr(plural)
    try:
        row = m.fetch(session, cred, ident)
        m.enforce(cred, "get", row)
    except CloudpodsError as e:
        return Response(status_code=e.code)
    return Response(status_code=200)


def update_resource(session: Any, cred: Any, plural: str, ident: str, body: Any) -> Response:
    m = _mgr(plural)
    row = _held(m, session, cred, ident, "update", "update")
    row = m.update(session, cred, row, unwrap(body, m.keyword))
    m.audit(session, cred, "update", row)
    session.flush()
    out = m.to_dict(session, row)
    session.commit()
    return json_response({m.keyword: out})


@router.put("/{plural}/{ident}")
def put_resource(plural: str, ident: str, session: SessionDep, cred: CredentialDep, body: Any = AnyBody) -> Response:
    return update_resource(session, cred, plural, ident, body)


@router.patch("/{plural}/{ident}")
def patch_resource(plural: str, ident: str, session: SessionDep, cred: CredentialDep,
                   body: Any = AnyBody) -> Response:
    return update_resource(session, cred, plural, ident, body)


@router.delete("/{plural}/{ident}")
def delete_resource(plural: str, ident: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    m = _mgr(plural)
    row = _held(m, session, cred, ident, "delete", "delete")
    params = dict(request.query_params)
    snapshot = m.to_dict(session, row)
    out = m.delete(session, cred, row, params)
    m.audit(session, cred, "delete", row)
    session.commit()
    return json_response({m.keyword: out if out is not None else snapshot})


@router.get("/{plural}/{ident}/{spec}")
def get_spec(plural: str, ident: str, spec: str, session: SessionDep, cred: CredentialDep, q: ListDep) -> Response:
    if spec in MANAGERS and plural in get_manager(spec).contexts:
        return _list(session, cred, get_manager(spec), q, (plural, ident))
    m = _mgr(plural)
    if spec in m.joints:  # /hosts/<h>/storages: the joint rows of one master
        return _list(session, cred, get_manager(m.joints[spec].slave), q, (plural, ident))
    fn = m.spec_fn(spec)
    row = m.fetch(session, cred, ident)
    m.enforce(cred, "get", row)
    return json_response(fn(m, session, cred, row, q))


@router.post("/{plural}/{ident}")
def class_action(plural: str, ident: str, session: SessionDep, cred: CredentialDep, body: Any = AnyBody) -> Response:
    m = _mgr(plural)
    fn = m.class_action_fn(ident)
    if fn is None:
        raise ActionNotFoundError(f"{m.plural} has no class action {ident}")
    m.enforce(cred, "perform")
    begin_write(session)
    out = fn(m, session, cred, unwrap(body, ""))
    session.commit()
    return json_response(out)


@router.post("/{plural}/{ident}/{action}")
def perform_action(plural: str, ident: str, action: str, session: SessionDep, cred: CredentialDep,
                   body: Any = AnyBody) -> Response:
    if action in MANAGERS and plural in get_manager(action).contexts:
        return _create(session, cred, get_manager(action), body, (plural, ident))
    m = _mgr(plural)
    fn = m.action_fn(action)
    row = _held(m, session, cred, ident, "perform", action)
    out = fn(m, session, cred, row, unwrap(body, m.keyword))
    m.audit(session, cred, action, row)
    session.flush()
    if out is None:
        out = {m.keyword: m.to_dict(session, row)}
    session.commit()
    return json_response(out)


def _joint(plural: str, ident: str, slave: str) -> tuple[Any, Any, Any]:
    m = _mgr(plural)
    j = m.joints.get(slave)
    if j is None:
        raise ResourceNotFoundError(f"{plural} have no joint with {slave}")
    return m, j, _mgr(j.slave if slave not in MANAGERS else slave)


@router.get("/{plural}/{ident}/{slave}/{sid}")
def joint_show(plural: str, ident: str, slave: str, sid: str, session: SessionDep, cred: CredentialDep) -> Response:
    m, j, s = _joint(plural, ident, slave)
    master = m.fetch(session, cred, ident)
    m.enforce(cred, "get", master)
    other = s.fetch(session, cred, sid)
    out = j.show(session, master, other)
    if out is None:
        raise ResourceNotFoundError(f"{slave} {sid} is not attached to {m.keyword} {ident}")
    return json_response({f"{m.keyword}{s.keyword}": out})


@router.post("/{plural}/{ident}/{slave}/{sid}")
def joint_attach(plural: str, ident: str, slave: str, sid: str, session: SessionDep, cred: CredentialDep,
                 body: Any = AnyBody) -> Response:
    m, j, s = _joint(plural, ident, slave)
    master = _held(m, session, cred, ident, "update", f"attach-{slave}")
    other = s.fetch(session, cred, sid)
    out = j.attach(session, cred, master, other, unwrap(body, ""))
    m.audit(session, cred, f"attach-{s.keyword}", master, notes=str(other.id))
    session.commit()
    return json_response({f"{m.keyword}{s.keyword}": out})


@router.delete("/{plural}/{ident}/{slave}/{sid}")
def joint_detach(plural: str, ident: str, slave: str, sid: str, session: SessionDep, cred: CredentialDep) -> Response:
    m, j, s = _joint(plural, ident, slave)
    master = _held(m, session, cred, ident, "update", f"detach-{slave}")
    other = s.fetch(session, cred, sid)
    j.detach(session, cred, master, other)
    m.audit(session, cred, f"detach-{s.keyword}", master, notes=str(other.id))
    session.commit()
    return json_response({})


def truthy(params: dict[str, str], name: str) -> bool:
    return bool(parse_bool(params.get(name), name, False))
