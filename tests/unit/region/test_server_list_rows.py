"""A server list page (plain rows: only create_spec's shown keys, read in SQL) gives each server the
same dict as its show (the whole ORM row)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from core.api.listing import ListQuery, paginate
from core.db.base import utcnow
from core.db.engine import Database
from core.region.models import Server
from core.region.registry import get_manager

SPECS: list[dict[str, Any]] = [
    {},
    {"disks": [{"index": 0, "size": 1024}], "nets": [], "secgroups": ["sg"]},
    {"cdrom": {"id": "img-1", "name": "installer.iso", "image_id": "img-1"}, "boot_order": ["cdrom", "disk0"]},
    {"cdrom": {"image_id": "img-2"}, "boot_order": []},  # a drive entry without a name: shown as ""
    {"cdrom": None, "boot_order": None, "fail_reason": None},
    {"cdrom": {}, "fail_reason": ""},
    {"fail_reason": "no host fits: cpu \"quoted\" ünicode", "disks": [{"index": 0}]},
]


@pytest.mark.parametrize("details", [True, False])
def test_a_list_page_row_is_the_servers_show(db: Database, details: bool) -> None:
    now = utcnow()
    with db.session() as s:
        for i, spec in enumerate(SPECS):
            s.add(Server(name=f"s{i}", tenant_id="p", domain_id="default", status="ready", vcpu_count=1,
                         vmem_size=64, hypervisor="kvm", create_spec=spec, meta={"k": str(i)},
                         created_at=now - timedelta(seconds=i), updated_at=now,
                         pending_deleted_at=now if i % 2 else None))
    m = get_manager("servers")
    with db.session() as s:
        page = paginate(s, select(Server), Server, ListQuery(details=details), columns=m.list_columns())
        listed = {d["name"]: d for d in m.to_dicts(s, page.rows, details)}
        shown = {}
        for row in s.scalars(select(Server)):
            d = m.base_dict(row)
            if details:
                m.add_details(s, [row], [d])
            shown[d["name"]] = d
    assert len(listed) == len(SPECS) and listed == shown
    if details:
        assert listed["s2"]["cdrom"] == "installer.iso" and listed["s2"]["boot_order"] == "cdrom,disk0"
        assert listed["s3"]["cdrom"] == "" and "boot_order" not in listed["s3"]
        assert listed["s6"]["fail_reason"].startswith("no host fits")
        assert not {"cdrom", "boot_order", "fail_reason"} & (set(listed["s4"]) | set(listed["s5"]))
    assert listed["s1"]["pending_deleted_at"].endswith("Z") and listed["s0"]["pending_deleted_at"] is None
