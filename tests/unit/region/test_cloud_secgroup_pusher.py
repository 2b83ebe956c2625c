"""The cloud security-group pusher across replicas: what one replica pushed is not pushed again by
another (the version is on the host row), and a replica finding the lease held waits a lease
period before asking again instead of every second."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy import update

from core.db.engine import Database
from core.region.models import Cloudregion, Host, Zone
from drivers.base import SecgroupSpec


class Cloud:
    def __init__(self) -> None:
        self.pushes = 0

    def push_secgroups(self, groups: Sequence[SecgroupSpec], servers: Mapping[str, Sequence[str]]) -> Sequence[str]:
        self.pushes += 1
        return ()


class Drivers:
    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud

    def get(self, hid: str, driver: str, blob: Any) -> Cloud:
        return self.cloud


class Runtime:
    def __init__(self, db: Database, cloud: Cloud) -> None:
        self.db, self.drivers = db, Drivers(cloud)


def test_a_push_is_made_once_across_replicas_and_a_held_lease_is_not_asked_every_second(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.db.lease as lease
    from core.region.cloud import secgroups

    with db.session() as s:
        region = Cloudregion(name="r-push", manager_id="m1")
        s.add(region)
        s.flush()
        zone = Zone(name="z-push", cloudregion_id=region.id, manager_id="m1")
        s.add(zone)
        s.flush()
        host = Host(name="h-push", zone_id=zone.id, target="executor", manager_id="m1", driver="aws",
                    host_type="aws", secgroup_version=3)
        s.add(host)
        s.commit()
        hid = host.id
    cloud = Cloud()
    asked: list[str] = []
    real = lease.try_acquire
    monkeypatch.setattr(lease, "try_acquire", lambda s, name, holder, ttl: asked.append(holder) or real(
        s, name, holder, ttl))
    a, b = secgroups.Pusher(Runtime(db, cloud), "a"), secgroups.Pusher(Runtime(db, cloud), "b")
    assert a.run_once() == 1 and cloud.pushes == 1
    with db.session() as s:
        assert (s.get(Host, hid).sys_info or {})[secgroups.PUSHED_KEY] == 3
    # the other replica finds the version pushed: no push, not even a lease asked for
    assert b.run_once() == 0 and cloud.pushes == 1 and asked == ["a"]
    # a change while "a" holds the lease: "b" asks once, then waits; "a" pushes it
    with db.session() as s:
        s.execute(update(Host).where(Host.id == hid).values(secgroup_version=4))
        s.commit()
    for _ in range(5):
        assert b.run_once() == 0
    assert asked == ["a", "b"] and cloud.pushes == 1
    assert a.run_once() == 1 and cloud.pushes == 2
    assert b.run_once() == 0 and asked == ["a", "b", "a"]
