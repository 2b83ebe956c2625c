"""``Manager.fetch`` keeps its selects across requests with the tenant as a parameter: callers of
different projects and domains, alternating on the same manager, each see only what they reach."""
from __future__ import annotations

from typing import Any

import pytest

from core.api.context import Credential
from core.db.base import utcnow
from core.db.engine import Database
from core.errors import InputParameterError, ResourceNotFoundError
from core.region.models import Network, Server, Vpc, Wire
from core.region.registry import get_manager
from tests.support.unitdb import add_hosts


def _cred(scope: str, project: str | None = None, domain: str = "default") -> Credential:
    return Credential(token="t", user_id="u", user_name="u", user_domain_id=domain, user_domain_name=domain,
                      scope=scope, roles=("admin",), project_id=project, project_domain_id=domain if project else None,
                      domain_id=domain if scope == "domain" else None)


def _server(name: str, tenant: str, domain: str) -> Server:
    now = utcnow()
    return Server(id=f"id-{name}-{tenant}", name=name, tenant_id=tenant, domain_id=domain, status="ready",
                  vcpu_count=1, vmem_size=64, hypervisor="kvm", create_spec={}, created_at=now, updated_at=now)


def _seen(db: Database, plural: str, cred: Credential, ident: str) -> Any:
    with db.session() as s:
        try:
            return get_manager(plural).fetch(s, cred, ident).id
        except ResourceNotFoundError:
            return None


def test_fetch_sees_only_what_each_caller_reaches(db: Database) -> None:
    with db.session() as s:
        s.add_all([_server("web", "pa", "default"), _server("web", "pb", "default"), _server("db", "pb", "default"),
                   _server("far", "pc", "d2")])
    pa, pb, sysc = _cred("project", "pa"), _cred("project", "pb"), _cred("system")
    dom, dom2, none = _cred("domain"), _cred("domain", domain="d2"), _cred("project", None)
    for _ in range(2):  # the second round runs on the kept selects
        assert _seen(db, "servers", pa, "web") == "id-web-pa"
        assert _seen(db, "servers", pb, "web") == "id-web-pb"
        assert _seen(db, "servers", pa, "db") is None and _seen(db, "servers", pa, "id-db-pb") is None
        assert _seen(db, "servers", pb, "id-db-pb") == "id-db-pb"
        assert _seen(db, "servers", dom, "db") == "id-db-pb" and _seen(db, "servers", dom, "far") is None
        assert _seen(db, "servers", dom2, "far") == "id-far-pc" and _seen(db, "servers", dom2, "db") is None
        assert _seen(db, "servers", sysc, "far") == "id-far-pc" and _seen(db, "servers", none, "id-web-pa") is None
        with db.session() as s, pytest.raises(InputParameterError, match="ambiguous"):
            get_manager("servers").fetch(s, sysc, "web")  # two projects' "web": the id is needed


def test_fetch_of_a_shared_row_reaches_every_project(db: Database) -> None:
    with db.session() as s:
        add_hosts(s, "ft")
        s.add(Vpc(id="v1", name="v1", cloudregion_id="r-ft"))
        s.flush()
        s.add(Wire(id="w1", name="w1", zone_id="z-ft", vpc_id="v1"))
        s.flush()
        for name, tenant, public in (("mine", "pa", False), ("theirs", "pb", False), ("shared", "pb", True)):
            s.add(Network(id=name, name=name, tenant_id=tenant, domain_id="default", is_public=public, wire_id="w1",
                          guest_ip_start="10.0.0.2", guest_ip_end="10.0.0.9", guest_ip_mask=24,
                          ip_start_int=167772162, ip_end_int=167772169))
    pa, pb = _cred("project", "pa"), _cred("project", "pb")
    for _ in range(2):
        assert _seen(db, "networks", pa, "mine") == "mine" and _seen(db, "networks", pa, "theirs") is None
        assert _seen(db, "networks", pa, "shared") == "shared" and _seen(db, "networks", pb, "theirs") == "theirs"
        assert _seen(db, "networks", pb, "mine") is None and _seen(db, "networks", _cred("project"), "mine") is None


def test_list_pages_on_the_kept_selects_stay_each_callers(db: Database) -> None:
    """The list route keeps a page's selects with the kept tenant filter: alternating callers, and
    a filtered query in between (never kept), each get their own rows."""
    from core.api.listing import paginate, parse_list_query

    with db.session() as s:
        s.add_all([_server("web", "pa", "default"), _server("web", "pb", "default"), _server("db", "pb", "default"),
                   _server("far", "pc", "d2")])
    m = get_manager("servers")
    callers = {"pa": (_cred("project", "pa"), {"id-web-pa"}), "pb": (_cred("project", "pb"), {"id-web-pb", "id-db-pb"}),
               "dom2": (_cred("domain", domain="d2"), {"id-far-pc"}),
               "sys": (_cred("system"), {"id-web-pa", "id-web-pb", "id-db-pb", "id-far-pc"}),
               "none": (_cred("project"), set())}

    def page(cred: Credential, query: list[tuple[str, str]]) -> tuple[set[str], int]:
        stmt, params, kept = m.visible_kept(cred)
        with db.session() as s:
            p = paginate(s, stmt, Server, parse_list_query(query), columns=m.list_columns(), params=params, kept=kept)
        return {r.id for r in p.rows}, p.total

    for _ in range(2):
        for cred, want in callers.values():
            assert page(cred, [("limit", "20")]) == (want, len(want))
            webs = {i for i in want if "web" in i}
            assert page(cred, [("name", "web")]) == (webs, len(webs))
            assert page(cred, [("limit", "1"), ("offset", "1")])[0] <= want
    assert m.visible_kept(callers["pa"][0])[2], "the plain page's selects are kept"


def test_kept_page_selects_are_bounded(db: Database) -> None:
    """Every order_by combination is a shape of its own (81 here): the kept ones stop at KEPT_SHAPES."""
    from core.api.listing import KEPT_SHAPES, paginate, parse_list_query

    m = get_manager("servers")
    stmt, params, kept = m.visible_kept(_cred("project", "pbound"))
    assert kept is not None
    cols = ["name", "status", "created_at", "updated_at", "vcpu_count", "vmem_size", "hypervisor", "os_type", "os_arch"]
    with db.session() as s:
        for a in cols:
            for b in cols:
                q = parse_list_query([("order_by", f"{a},{b}")])
                paginate(s, stmt, Server, q, columns=m.list_columns(), params=params, kept=kept)
    assert len(kept) <= KEPT_SHAPES + 1  # + fetch's selects
