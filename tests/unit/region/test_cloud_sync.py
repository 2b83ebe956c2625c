"""The cloud sync framework with a provider made here (no cloud needed): due accounts are queued,
one replica claims a sync and another takes it over when its lease lapses, a failed page leaves
the account partial with nothing deleted, one bad object costs only itself, and an unchanged cloud
is synced without a write."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from core.db.base import utcnow
from core.db.engine import Database
from core.db.lease import DbLease
from core.region.models import Cloudaccount, Cloudprovider, Host, Server
from drivers.base import CloudInstance, CloudRegion, CloudZone, GuestStatus, Page, ProviderCapability, ProviderError


class FakeCloud:
    """What the fake cloud has; ``fail_page`` makes that page of servers fail."""

    servers: list[CloudInstance] = []
    fail_page: int | None = None


class FakeProvider:
    name = "fake"
    capabilities = frozenset()

    def __init__(self, config: Any) -> None:
        self.config = config

    def validate(self) -> dict[str, Any]:
        return {}

    def fetch_page(self, kind: str, page_token: str = "") -> Page:
        if kind == "cloudregions":
            return Page((CloudRegion(external_id="r1", name="r1"),))
        if kind == "zones":
            return Page((CloudZone(external_id="z1", name="z1", region_id="r1"),))
        if kind == "servers":
            n = int(page_token or 0)
            if FakeCloud.fail_page == n:
                raise ProviderError("page failed on purpose")
            items = FakeCloud.servers[n * 2:n * 2 + 2]
            more = len(FakeCloud.servers) > n * 2 + 2
            return Page(tuple(items), str(n + 1) if more else "")
        return Page(())

    def close(self) -> None:
        pass


class FakeDriver:
    name = "fake"
    version = "1"
    capabilities = frozenset()

    @classmethod
    def for_account(cls, config: Any) -> FakeProvider:
        return FakeProvider(config)


def vm(i: int, zone: str = "z1") -> CloudInstance:
    return CloudInstance(external_id=f"i-{i}", name=f"vm{i}", zone_id=zone, status=GuestStatus.RUNNING, vcpu=1,
                         memory_mb=512)


@pytest.fixture
def cloud(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from core.region import hosted
    from core.region.cloud.config import seal
    from drivers import registry

    hosted.configure(tmp_path, db)
    monkeypatch.setitem(registry._loaded, "fake", FakeDriver)
    FakeCloud.servers, FakeCloud.fail_page = [vm(i) for i in range(5)], None
    with db.session() as s:
        a = Cloudaccount(name="acct", provider="Fake", driver="fake", account="me", secret=seal("sekrit-pw-7f3e"),
                         tenant_id="p1", sync_status="queued")
        s.add(a)
        s.flush()
        s.add(Cloudprovider(name="acct", cloudaccount_id=a.id, tenant_id="p1"))
        s.commit()
        aid = a.id
    yield aid
    hosted.unconfigure()


def queue_again(db: Database, account_id: str) -> None:
    """The account is due again (as the periodic job or ``cloud-account-sync`` makes it)."""
    with db.session() as s:
        s.get(Cloudaccount, account_id).sync_status = "queued"
        s.commit()


def vm0(db: Database) -> tuple[str, str]:
    """(status, power_status) of the synced server vm0."""
    with db.session() as s:
        row = s.scalar(select(Server).where(Server.name == "vm0"))
        assert row is not None
        return row.status, row.power_status


def names(db: Database) -> list[str]:
    with db.session() as s:
        return sorted(s.scalars(select(Server.name)))


def test_due_accounts_are_queued(db: Database) -> None:
    from core.region.cloud.sync import due

    old = utcnow() - timedelta(hours=1)
    with db.session() as s:
        rows = (("stale", True, "idle", old, 900), ("fresh", True, "idle", utcnow(), 900),
                ("off", False, "idle", old, 900), ("never", True, "idle", None, 900),
                ("manual", True, "idle", old, 0), ("busy", True, "syncing", old, 900))
        for name, enabled, status, last, interval in rows:
            s.add(Cloudaccount(name=name, enabled=enabled, sync_status=status, last_sync=last,
                               sync_interval_seconds=interval))
        s.commit()
    with db.session() as s:
        assert due(s) == 2
    with db.session() as s:
        got = dict(s.execute(select(Cloudaccount.name, Cloudaccount.sync_status)).tuples().all())
    assert got == {"stale": "queued", "fresh": "idle", "off": "idle", "never": "queued", "manual": "idle",
                   "busy": "syncing"}


def test_one_replica_claims_a_sync_another_takes_it_over_when_the_lease_lapses(db: Database, cloud: str) -> None:
    from core.region.cloud.sync import claim, lease_name

    assert claim(db, "replica-a") == cloud
    assert claim(db, "replica-b") is None  # a holds it (syncing, lease alive)
    with db.session() as s:
        s.execute(update(DbLease).where(DbLease.name == lease_name(cloud))
                  .values(expires_at=utcnow() - timedelta(seconds=1)))
        s.commit()
    assert claim(db, "replica-b") == cloud


def test_a_failed_page_deletes_nothing_and_the_account_is_partial(db: Database, cloud: str) -> None:
    from core.region.cloud.sync import run_one

    assert run_one(db, "me")["status"] == "connected"
    assert names(db) == ["vm0", "vm1", "vm2", "vm3", "vm4"]
    with db.session() as s:
        host = s.scalar(select(Host).where(Host.driver == "fake"))
        assert host is not None and host.target == "executor" and host.name == "acct-z1"
        assert "sekrit-pw-7f3e" not in host.driver_config  # (a short secret can occur in base64 by chance)
    FakeCloud.servers = [vm(i) for i in (0, 1, 3)]  # vm2 and vm4 are gone from the cloud...
    FakeCloud.fail_page = 1  # ... but the second page cannot be read
    queue_again(db, cloud)
    out = run_one(db, "me")
    assert out["status"] == "partial" and out["incomplete"] == ["servers"], out
    assert names(db) == ["vm0", "vm1", "vm2", "vm3", "vm4"]
    with db.session() as s:
        acct = s.get(Cloudaccount, cloud)
        assert acct.status == "partial" and "page failed on purpose" in acct.status_reason
    FakeCloud.fail_page = None
    queue_again(db, cloud)
    out = run_one(db, "me")
    assert out["status"] == "connected" and out["kinds"]["servers"]["deleted"] == 2
    assert names(db) == ["vm0", "vm1", "vm3"]


def test_one_bad_object_costs_only_itself_and_an_unchanged_cloud_writes_nothing(db: Database, cloud: str) -> None:
    from core.region.cloud.sync import run_one

    FakeCloud.servers = [vm(0), vm(1, zone="nowhere"), vm(2)]
    out = run_one(db, "me")
    errs = out["kinds"]["servers"]["errors"]
    assert len(errs) == 1 and errs[0].startswith("i-1:"), errs
    assert names(db) == ["vm0", "vm2"]
    FakeCloud.servers = [vm(0), vm(2)]
    queue_again(db, cloud)
    out = run_one(db, "me")
    assert out["status"] == "connected" and out["changed"] == 0, out


class PartitionedProvider(FakeProvider):
    """The same cloud listed as six partitions of one server a page, side by side
    (``PARALLEL_LISTING``: more partitions than the sync's listing threads)."""

    capabilities = frozenset({ProviderCapability.PARALLEL_LISTING})
    PARTS = ("p0", "p1", "p2", "p3", "p4", "p5")
    fail_part: str | None = None

    def partitions(self, kind: str) -> tuple[str, ...]:
        return self.PARTS if kind == "servers" else ("",)

    def fetch_partition_page(self, kind: str, partition: str, page_token: str = "") -> Page:
        if kind != "servers":
            return self.fetch_page(kind, page_token)
        mine = [v for i, v in enumerate(FakeCloud.servers) if self.PARTS[i % len(self.PARTS)] == partition]
        n = int(page_token or 0)
        if partition == PartitionedProvider.fail_part and n == 1:
            raise ProviderError(f"page {n} of {partition} failed on purpose")
        return Page(tuple(mine[n:n + 1]), str(n + 1) if n + 1 < len(mine) else "")


def test_a_provider_listed_in_parallel_syncs_the_same_and_a_failed_partition_deletes_nothing(
        db: Database, cloud: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from core.region.cloud.sync import run_one

    monkeypatch.setattr(FakeDriver, "for_account", classmethod(lambda cls, config: PartitionedProvider(config)))
    FakeCloud.servers = [vm(i) for i in range(20)]
    before = threading.active_count()
    out = run_one(db, "me")
    assert out["status"] == "connected" and out["kinds"]["servers"]["pages"] == 20, out
    assert names(db) == sorted(f"vm{i}" for i in range(20))
    FakeCloud.servers = [vm(i) for i in range(10)]  # half are gone from the cloud, but one partition fails
    PartitionedProvider.fail_part = "p1"
    try:
        queue_again(db, cloud)
        out = run_one(db, "me")
    finally:
        PartitionedProvider.fail_part = None
    assert out["status"] == "partial" and out["incomplete"] == ["servers"], out
    assert "p1 failed on purpose" in out["reason"]
    assert len(names(db)) == 20  # nothing it could not see is gone
    assert threading.active_count() == before  # every listing thread ended (none left blocked on its queue)
    queue_again(db, cloud)
    out = run_one(db, "me")
    assert out["status"] == "connected" and out["kinds"]["servers"]["deleted"] == 10
    assert names(db) == sorted(f"vm{i}" for i in range(10))


def test_a_listing_read_before_a_user_action_ended_does_not_undo_it(db: Database, cloud: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The cloud listed vm0 running; a server-stop ended (status ready, no task) before that page was
    applied: the sync leaves the newer status, and the next sync applies what the cloud says then."""
    from core.region.cloud.sync import run_one

    assert run_one(db, "me")["status"] == "connected"
    fetch = FakeProvider.fetch_page

    def stopped_meanwhile(self: FakeProvider, kind: str, page_token: str = "") -> Page:
        page = fetch(self, kind, page_token)
        if kind == "servers" and not page_token:  # read (vm0 running); now the user's stop ends
            with db.session() as s:
                row = s.scalar(select(Server).where(Server.name == "vm0"))
                assert row is not None and row.status == "running"
                row.status, row.power_status = "ready", "off"
                s.commit()
        return page

    monkeypatch.setattr(FakeProvider, "fetch_page", stopped_meanwhile)
    queue_again(db, cloud)
    assert run_one(db, "me")["status"] == "connected"
    assert vm0(db) == ("ready", "off")
    monkeypatch.setattr(FakeProvider, "fetch_page", fetch)  # the cloud read again after the stop: it says running
    queue_again(db, cloud)
    assert run_one(db, "me")["status"] == "connected"
    assert vm0(db)[0] == "running"
