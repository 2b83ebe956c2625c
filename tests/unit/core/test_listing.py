"""The one list helper, on a real SQLite database."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.api.listing import ListQuery, paginate, parse_bool
from core.audit import Action
from core.db.base import Base, utcnow
from core.db.engine import Database
from core.errors import InputParameterError


@pytest.fixture
def session(tmp_path) -> Iterator[Session]:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite:///{tmp_path / 't.db'}")
    Base.metadata.create_all(db.engine, tables=[Action.__table__])
    now = utcnow()
    with db.session() as s:
        for i in range(30):
            s.add(Action(id=f"id{i:02d}", action="create" if i % 2 else "delete", obj_type="server",
                         obj_name=f"vm-{i:02d}" + ("_x%" if i == 7 else ""), success=i % 3 != 0,
                         start_time=now + timedelta(seconds=i)))
    with db.sessionmaker() as s:
        yield s
    db.dispose()


def q(**kw) -> ListQuery:  # type: ignore[no-untyped-def]
    return ListQuery(**kw)


def test_limit_offset_total_and_order(session: Session) -> None:
    p = paginate(session, select(Action), Action, q(limit=5, offset=5, order_by=["start_time"], order="asc"))
    assert p.total == 30 and [a.id for a in p.rows] == ["id05", "id06", "id07", "id08", "id09"]
    env = p.envelope("actions", [{"id": a.id} for a in p.rows])
    assert env["total"] == 30 and env["limit"] == 5 and env["offset"] == 5


def test_filters_and_filter_any(session: Session) -> None:
    p = paginate(session, select(Action), Action, q(filters=["action.equals(create)", "success.equals(False)"]))
    assert {a.id for a in p.rows} == {"id03", "id09", "id15", "id21", "id27"}
    p = paginate(session, select(Action), Action, q(filters=["id.in(id01,id02)", "id.equals(id29)"], filter_any=True))
    assert {a.id for a in p.rows} == {"id01", "id02", "id29"}
    p = paginate(session, select(Action), Action, q(filters=["id.between(id10,id12)"]))
    assert p.total == 3


def test_search_escapes_wildcards(session: Session) -> None:
    p = paginate(session, select(Action), Action, q(search="_x%"), searchable=("obj_name",))
    assert [a.id for a in p.rows] == ["id07"]


def test_paging_marker(session: Session) -> None:
    seen: list[str] = []
    marker = ""
    while True:
        p = paginate(session, select(Action), Action, q(limit=7, paging_marker=marker))
        seen += [a.id for a in p.rows]
        if not p.next_marker:
            break
        marker = p.next_marker
    assert seen == sorted(seen) and len(seen) == 30 and len(set(seen)) == 30  # every row once, in id order


@pytest.mark.parametrize("bad", ["nosuch.equals(1)", "action.frobnicate(x)", "garbage", "success.equals(maybe)",
                                 "start_time.gt(yesterday)"])
def test_bad_filters_are_400(session: Session, bad: str) -> None:
    with pytest.raises(InputParameterError):
        paginate(session, select(Action), Action, q(filters=[bad]))


def test_bad_order_by_is_400(session: Session) -> None:
    with pytest.raises(InputParameterError, match="order_by"):
        paginate(session, select(Action), Action, q(order_by=["password"]))


def test_parse_bool_refuses_json_numbers_and_objects_with_a_400() -> None:
    for v in (1, 0, 2.5, {"a": 1}, ["true"]):
        with pytest.raises(InputParameterError, match="is not a boolean"):
            parse_bool(v, "auto_start")  # type: ignore[arg-type]


def test_parse_bool_case_insensitive() -> None:
    assert parse_bool("True", "x") is True and parse_bool("FALSE", "x") is False
    with pytest.raises(InputParameterError):
        parse_bool("yesplease", "x")


# ---- the list grammar Cloudpods' clients send (issue 20) ------------------------------------------
from core.api.listing import parse_list_query  # noqa: E402


def test_indexed_repeated_and_bare_keys_fold_into_one_list() -> None:
    lq = parse_list_query([("status.0", "running"), ("status.1", "ready"), ("filter.0", "a.equals(1)"),
                           ("filter.1", "b.equals(2)"), ("order_by", "name"), ("obj_type", "server"),
                           ("obj_type", "disk"), ("limit.0", "5"), ("field.0", "id"), ("field.1", "name")])
    assert lq.extra["status"] == ["running", "ready"] and lq.extra["obj_type"] == ["server", "disk"]
    assert lq.filters == ["a.equals(1)", "b.equals(2)"] and lq.limit == 5 and lq.fields == ["id", "name"]


def test_scope_max_and_user_are_accepted() -> None:
    assert parse_list_query([("scope", "max")]).scope is None
    assert parse_list_query([("scope", "user")]).scope == "project"
    with pytest.raises(InputParameterError):
        parse_list_query([("scope", "galaxy")])


def test_every_plain_column_filters(session: Session) -> None:
    p = paginate(session, select(Action), Action, parse_list_query([("obj_name", "vm-03")]))
    assert [a.id for a in p.rows] == ["id03"]
    p = paginate(session, select(Action), Action, parse_list_query([("obj_name", "no-such")]))
    assert p.rows == [] and p.total == 0
    p = paginate(session, select(Action), Action,
                 parse_list_query([("id.0", "id01"), ("id.1", "id02"), ("id.2", "id04")]))
    assert {a.id for a in p.rows} == {"id01", "id02", "id04"}
    p = paginate(session, select(Action), Action,
                 parse_list_query([("action", "create"), ("success", "False")]))  # AND across keys
    assert {a.id for a in p.rows} == {"id03", "id09", "id15", "id21", "id27"}
    # keys that are no column are ignored (Cloudpods ignores unknown list parameters)
    assert paginate(session, select(Action), Action, parse_list_query([("nosuch", "x")])).total == 30
    with pytest.raises(InputParameterError):
        paginate(session, select(Action), Action, parse_list_query([("success", "maybe")]))


def test_indexed_filters_and_or_with_filter_any(session: Session) -> None:
    both = [("filter.0", "id.in(id01,id02)"), ("filter.1", "id.equals(id02)")]
    assert [a.id for a in paginate(session, select(Action), Action, parse_list_query(both)).rows] == ["id02"]
    p = paginate(session, select(Action), Action, parse_list_query([*both, ("filter_any", "True")]))
    assert {a.id for a in p.rows} == {"id01", "id02"}


def test_a_key_the_route_read_itself_is_not_filtered_again(session: Session) -> None:
    lq = parse_list_query([("obj_name", "vm-03")])
    assert lq.get("obj_name") == "vm-03"  # the route handled it (e.g. with its own semantics)
    assert paginate(session, select(Action), Action, lq).total == 30
    assert paginate(session, select(Action), Action, parse_list_query([("obj_name", "vm-03")]),
                    plain_filters=False).total == 30


def test_resolver_maps_names_of_referenced_rows(session: Session) -> None:
    seen: list[tuple[str, str]] = []

    def resolve(col: str, v: str) -> str:
        seen.append((col, v))
        return "id05" if v == "five" else v

    # obj_id is a *_id column: its values go through the resolver (names -> ids)
    session.execute(Action.__table__.update().where(Action.id == "id05").values(obj_id="id05"))
    p = paginate(session, select(Action), Action, parse_list_query([("obj", "five")]), resolve=resolve)
    assert [a.id for a in p.rows] == ["id05"] and seen == [("obj_id", "five")]


def test_column_pages_are_the_orm_pages_as_plain_rows_and_see_pending_changes(session: Session) -> None:
    """``columns=``: the same rows, order and values as the ORM page, read by attribute (and read-only);
    a row added but not flushed yet is on the page, as the ORM's autoflush would have it."""
    session.add(Action(id="id99", action="create", obj_type="server", obj_name="pending", success=True,
                       start_time=utcnow() + timedelta(hours=1)))
    cols = ["id", "obj_name", "start_time", "success"]
    query = q(limit=6, order_by=["start_time"])
    orm = paginate(session, select(Action), Action, query)
    plain = paginate(session, select(Action), Action, query, columns=cols)
    assert plain.total == orm.total == 31
    assert [tuple(getattr(r, c) for c in cols) for r in plain.rows] == \
        [tuple(getattr(a, c) for c in cols) for a in orm.rows]
    assert plain.rows[0].id == "id99" and plain.rows[0].start_time.tzinfo is not None
    with pytest.raises(AttributeError):
        plain.rows[0].id = "changed"
