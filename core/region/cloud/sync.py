"""Sync of a cloud account: page by page, incremental, idempotent, never deleting what it could not see.

    queue(session, account)            on demand (``POST /cloudaccounts/<id>/sync``) or when due
                                       (the periodic job ``cloudaccounts-sync``)
    Syncer (threads in every replica)  claims a queued account under a DB lease, runs ``sync_account``

``sync_account`` walks ``drivers.base.CLOUD_KINDS`` in order (parents first). Each page is applied
in its own transaction (core/region/cloud/apply.py): rows are matched on (manager_id, external_id),
created or updated only when a field changed (an unchanged second sync writes nothing), and an
object that fails to apply is recorded in the report and still counts as seen. A kind whose
listing failed on any page is *incomplete*: nothing of that kind is deleted, and the account ends
``partial`` with the reason. Only after a complete listing are rows the cloud no longer has
deleted. Wrong credentials make the account ``unhealthy`` (and change nothing else).

Progress (kind, pages, objects) and the final report live on the account row (``sync_report``);
the lease is renewed per page, so a replica that dies mid-sync is taken over by another.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from queue import Full, Queue
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.db.engine import begin_write
from core.db.lease import release, try_acquire
from core.loops import Loops
from core.region.cloud import apply
from core.region.cloud.config import provider_of
from core.region.models import Cloudaccount, Cloudprovider
from core.tasks.engine import Run, TaskBase
from core.wakeup import Wakeup
from drivers.base import (
    CLOUD_KINDS,
    HOST_KINDS,
    DriverError,
    Page,
    PartitionedListing,
    ProviderAuthError,
    ProviderCapability,
)

log = logging.getLogger("cloudpods.cloudsync")

LEASE_S = 120.0
IDLE_POLL_S = 2.0
WAKEUP = Wakeup()
MAX_ERRORS = 50  # per kind, kept in the report
# listing threads of a provider with PARALLEL_LISTING, per sync (Settings.cloudsync_list_threads;
# 0: paged one at a time by the sync's own thread, as for any other provider)
LIST_THREADS = 4
AHEAD_PAGES = 2  # pages a listing stream may run ahead of the applying
SAME_TOKEN = "the cloud returned the same page token again"


def lease_name(account_id: str) -> str:
    return f"cloudsync:{account_id}"


# Cloudpods' ``resources`` of a sync -> the kinds they list (regions and zones always: the rest hang off them)
RESOURCES: dict[str, tuple[str, ...]] = {
    "compute": ("wires", "storages", "hosts", "secgroups", "servers", "disks"),
    "network": ("vpcs", "wires", "networks"),
    "eip": ("eips",),
    "image": ("cachedimages",),
}
ALWAYS = ("cloudregions", "zones")


def queue(session: Session, account: Cloudaccount, cred: Any = None, scope: dict[str, Any] | None = None) -> bool:
    """Ask for a sync (a no-op while one is queued or running); True if newly queued.

    Each sync is a ``CloudAccountSyncTask`` row (``account.sync_task_id``) waiting for the Syncer:
    ``task-list`` shows it, and it ends done (connected) or failed (partial / unhealthy, the reason).
    ``scope``: Cloudpods' ``region`` (region external ids) and ``resources`` (keys of RESOURCES).
    """
    if account.sync_status in ("queued", "syncing"):
        return False
    from core.tasks.engine import submit
    from core.tasks.models import WAITING

    t = submit(session, "CloudAccountSyncTask", "cloudaccount", account.id, account.name, dict(scope or {}),
               cred=cred, tenant_id=account.tenant_id, domain_id=account.domain_id)
    t.status, t.stage = WAITING, "on_synced"  # no worker runs it before the Syncer reports
    session.info.pop("tasks_queued", None)
    account.sync_status, account.sync_task_id = "queued", t.id
    session.info["cloudsync_queued"] = True
    return True


def _scope(db: Any, account_id: str) -> dict[str, Any]:
    from core.tasks.models import Task

    with db.session() as s:
        tid = s.scalar(select(Cloudaccount.sync_task_id).where(Cloudaccount.id == account_id))
        t = s.get(Task, tid) if tid else None
        return {k: v for k, v in (t.params if t is not None else {}).items() if k in ("region", "resources") and v}


def _wake_task(s: Session, task_id: str | None, out: dict[str, Any]) -> None:
    """The sync's task (waiting at ``on_synced``) runs on with the report."""
    from core.tasks.models import QUEUED, WAITING, Task

    t = s.scalar(select(Task).where(Task.id == task_id).with_for_update()) if task_id else None
    if t is None or t.status != WAITING:
        return
    t.params = {**t.params, "__result__": {k: out.get(k) for k in ("status", "reason", "changed", "seconds")}}
    t.status, t.run_after = QUEUED, utcnow()
    s.info["tasks_queued"] = True


def due(session: Session) -> int:
    """The periodic job: enabled accounts whose last sync is older than their interval are queued."""
    begin_write(session)
    now = utcnow()
    n = 0
    for a in session.scalars(select(Cloudaccount).where(Cloudaccount.enabled.is_(True),
                                                        Cloudaccount.sync_status == "idle")):
        if a.sync_interval_seconds > 0 and (a.last_sync is None or
                                            a.last_sync < now - timedelta(seconds=a.sync_interval_seconds)):
            n += int(queue(session, a))
    session.commit()
    if n:
        WAKEUP.set()
    return n


class Report:
    """What a sync saw and did, per kind; ``errors`` name the object (or page) and the reason."""

    def __init__(self) -> None:
        self.kinds: dict[str, dict[str, Any]] = {}
        self.incomplete: list[str] = []
        self.unreadable: dict[str, set[str]] = {}  # kind -> ids the cloud has but could not be read
        self.started = time.monotonic()
        self.scope: dict[str, Any] = {}

    def kind(self, kind: str) -> dict[str, Any]:
        return self.kinds.setdefault(kind, {"seen": 0, "created": 0, "updated": 0, "deleted": 0, "pages": 0,
                                            "errors": []})

    def error(self, kind: str, what: str) -> None:
        errs = self.kind(kind)["errors"]
        if len(errs) < MAX_ERRORS:
            errs.append(what[:500])

    def as_dict(self, done: bool) -> dict[str, Any]:
        changed = sum(k["created"] + k["updated"] + k["deleted"] for k in self.kinds.values())
        out = {"done": done, "seconds": round(time.monotonic() - self.started, 3), "changed": changed,
               "incomplete": list(self.incomplete), "kinds": self.kinds}
        if self.scope:
            out["scope"] = self.scope
        return out


def _progress(db: Any, account_id: str, report: Report, phase: str, owner: str) -> None:
    with db.session() as s:
        if not try_acquire(s, lease_name(account_id), owner, LEASE_S):
            raise _LostLease(account_id)
    with db.session() as s:
        begin_write(s, background=True)
        s.execute(update(Cloudaccount).where(Cloudaccount.id == account_id)
                  .values(sync_report={**report.as_dict(False), "phase": phase}))
        s.commit()


class _LostLease(Exception):
    pass


def sync_account(db: Any, account_id: str, owner: str, scope: dict[str, Any] | None = None,
                 list_threads: int = LIST_THREADS) -> dict[str, Any]:
    """One sync of the account (the caller holds its lease); the report. ``scope`` (see ``queue``)
    narrows it: only those regions (the provider's ``regions`` option) and kinds are listed, and a
    sync narrowed to regions deletes nothing (what it did not list, it did not see)."""
    report = Report()
    scope = dict(scope or {})
    with db.session() as s:
        acct = s.get(Cloudaccount, account_id)
        if acct is None:
            return {"error": "account gone"}
        prov = s.scalar(select(Cloudprovider).where(Cloudprovider.cloudaccount_id == acct.id))
        if prov is None:
            return {"error": "account has no cloudprovider"}
        ctx = apply.Context.of(acct, prov)
        try:
            if scope.get("region"):
                from core.region.cloud.config import account_config
                from drivers.registry import get_driver

                cfg = account_config(acct)
                cfg["options"] = {**cfg["options"], "regions": list(scope["region"])}
                provider = get_driver(acct.driver).for_account(cfg)
            else:
                provider = provider_of(acct)
        except Exception as exc:  # a missing SDK, an undecryptable secret: the account cannot sync
            return _finish(db, account_id, report, "unhealthy", _why(exc))
    if scope:
        report.scope = scope
    try:
        try:
            provider.validate()
        except ProviderAuthError as exc:
            return _finish(db, account_id, report, "unhealthy", f"the cloud refused the credentials: {exc}")
        except Exception as exc:
            return _finish(db, account_id, report, "unhealthy", f"the cloud cannot be reached: {_why(exc)}")
        seen: dict[str, set[str]] = {}
        # hosts, storages and wires only from a provider that lists its own (a vCenter)
        kinds = [k for k in CLOUD_KINDS if ctx.lists_hosts or k not in HOST_KINDS]
        if scope.get("resources"):
            wanted = set(ALWAYS) | {k for r in scope["resources"] for k in RESOURCES.get(r, ())}
            kinds = [k for k in kinds if k in wanted]
        lister = Lister(provider, kinds, list_threads)
        try:
            for kind in kinds:
                seen[kind] = set()
                if not _walk(db, lister, ctx, kind, seen[kind], report, owner):
                    report.incomplete.append(kind)
        finally:
            lister.stop()
        # children before parents; a kind whose listing was incomplete deletes nothing
        for kind in apply.PURGE_ORDER:
            if kind in seen and kind not in report.incomplete and not scope.get("region"):
                _delete_gone(db, ctx, kind, seen[kind], report)
        if report.incomplete:
            errs = [e for k in report.incomplete for e in report.kind(k)["errors"][:1]]
            reason = (f"not every {', '.join(report.incomplete)} could be listed: nothing of those was deleted; "
                      + "; ".join(errs))
            return _finish(db, account_id, report, "partial", reason)
        if report.unreadable:
            errs = [e for k in report.unreadable for e in report.kind(k)["errors"][:2]]
            n = sum(len(v) for v in report.unreadable.values())
            return _finish(db, account_id, report, "partial",
                           f"{n} object(s) could not be read and were kept as they were: " + "; ".join(errs))
        return _finish(db, account_id, report, "connected", "")
    finally:
        provider.close()


# one page as the sync takes it: (the page or None, why not, seconds the cloud took, when its read began)
Got = tuple[Page | None, str, float, datetime]


class _Stream:
    """One (kind, partition) listing run ahead by a pool thread: its pages queue up here."""

    def __init__(self) -> None:
        self.q: Queue[Got] = Queue(maxsize=AHEAD_PAGES)
        self.dropped = threading.Event()  # its kind failed or the sync stopped: no one takes its pages


class Lister:
    """The pages of each kind, in ``kinds`` order. A provider with ``PARALLEL_LISTING`` is listed
    ahead: every (kind, partition) stream pages on its own in a pool thread (a few pages ahead at
    most), so the cloud's listing of later kinds and regions overlaps the applying of earlier ones.
    Any other provider is paged here, one page at a time."""

    def __init__(self, provider: Any, kinds: list[str], threads: int = LIST_THREADS) -> None:
        self.provider = provider
        self._stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._streams: dict[str, list[_Stream] | str] = {}
        caps: frozenset[ProviderCapability] = getattr(provider, "capabilities", frozenset())
        if threads < 1 or ProviderCapability.PARALLEL_LISTING not in caps \
                or not isinstance(provider, PartitionedListing):
            return
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="cloudsync-list")
        for kind in kinds:  # submitted in the order they are taken: the pool never waits on a later one
            try:
                parts = provider.partitions(kind)
            except Exception as exc:
                self._streams[kind] = _why(exc)
                continue
            streams = self._streams[kind] = [_Stream() for _ in parts]
            for part, st in zip(parts, streams, strict=True):
                self._pool.submit(self._run, kind, part, st)

    def _run(self, kind: str, part: str, st: _Stream) -> None:
        token = ""
        while not (self._stop.is_set() or st.dropped.is_set()):
            t0, began = time.monotonic(), utcnow()
            try:
                page = self.provider.fetch_partition_page(kind, part, token)
            except Exception as exc:
                self._put(st, (None, _why(exc), time.monotonic() - t0, began))
                return
            self._put(st, (page, "", time.monotonic() - t0, began))
            if not page.next_token or page.next_token == token:
                return
            token = page.next_token

    def _put(self, st: _Stream, item: Got) -> None:
        while not (self._stop.is_set() or st.dropped.is_set()):
            try:
                st.q.put(item, timeout=0.5)
                return
            except Full:
                continue

    def pages(self, kind: str) -> Generator[Got, None, None]:
        """(page, "", seconds the cloud took, when its read began) per page; (None, why, ...) for a page that
        failed, last."""
        if self._pool is None:
            yield from _paged(lambda token: self.provider.fetch_page(kind, token))
            return
        streams = self._streams.get(kind)
        if streams is None or isinstance(streams, str):  # never "listed, empty": that would delete all
            yield None, streams or f"{kind} was not listed", 0.0, utcnow()
            return
        try:
            for st in streams:
                token = ""
                while True:
                    got = st.q.get()  # its thread always ends with a page or a failure
                    yield got
                    page = got[0]
                    if page is None:
                        return
                    if not page.next_token:
                        break
                    if page.next_token == token:
                        yield None, SAME_TOKEN, 0.0, utcnow()
                        return
                    token = page.next_token
        finally:
            for st in streams:  # a kind abandoned early: its other streams stop and free their threads
                st.dropped.set()

    def stop(self) -> None:
        self._stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _paged(fetch: Any) -> Iterator[Got]:
    token = ""
    while True:
        t0, began = time.monotonic(), utcnow()
        try:
            page = fetch(token)
        except Exception as exc:
            yield None, _why(exc), time.monotonic() - t0, began
            return
        yield page, "", time.monotonic() - t0, began
        if not page.next_token:
            return
        if page.next_token == token:
            yield None, SAME_TOKEN, 0.0, began
            return
        token = page.next_token


def _walk(db: Any, lister: Lister, ctx: apply.Context, kind: str, seen: set[str], report: Report,
          owner: str) -> bool:
    """Apply ``kind`` page by page; False if a page failed (listing incomplete)."""
    stats = report.kind(kind)
    _progress(db, ctx.account_id, report, kind, owner)
    pages = lister.pages(kind)
    while True:
        t0 = time.monotonic()
        got = next(pages, None)
        if got is None:
            return True
        page, why, cloud_s, ctx.listed_at = got
        # where the time goes: the cloud's API (summed over the listing threads), waiting for it
        # here (what the sync pays), and writing here
        stats["cloud_s"] = round(stats.get("cloud_s", 0.0) + cloud_s, 3)
        stats["wait_s"] = round(stats.get("wait_s", 0.0) + time.monotonic() - t0, 3)
        if page is None:
            report.error(kind, f"page {stats['pages'] + 1}: {why}")
            log.warning("cloud account %s: listing %s failed: %s", ctx.account_name, kind, why)
            pages.close()
            return False
        stats["pages"] += 1
        for ext, reason in page.unreadable:  # the cloud has it: seen, kept as it is here
            seen.add(ext)
            report.unreadable.setdefault(kind, set()).add(ext)
            report.error(kind, reason)
        t1 = time.monotonic()
        with db.session() as s:
            begin_write(s, background=True)
            apply.apply_page(s, ctx, kind, list(page.items), seen, stats, report.error)
            s.commit()
        stats["apply_s"] = round(stats.get("apply_s", 0.0) + time.monotonic() - t1, 3)
        _progress(db, ctx.account_id, report, kind, owner)  # the lease, renewed per page


def _delete_gone(db: Any, ctx: apply.Context, kind: str, seen: set[str], report: Report) -> None:
    with db.session() as s:
        begin_write(s, background=True)
        apply.delete_gone(s, ctx, kind, seen, report.kind(kind), report.error,
                          frozenset(report.unreadable.get(kind, ())))
        s.commit()


def _finish(db: Any, account_id: str, report: Report, status: str, reason: str) -> dict[str, Any]:
    out = report.as_dict(True)
    out["status"] = status
    if reason:
        out["reason"] = reason
    with db.session() as s:
        begin_write(s, background=True)
        acct = s.get(Cloudaccount, account_id)
        if acct is not None:
            acct.status, acct.status_reason = status, reason[:4000]
            acct.sync_report = out
            acct.last_sync = acct.last_sync_end_at = utcnow()
            acct.sync_status = "idle"
            for p in s.scalars(select(Cloudprovider).where(Cloudprovider.cloudaccount_id == account_id)):
                p.status, p.last_sync, p.sync_status = status, acct.last_sync, "idle"
            _wake_task(s, acct.sync_task_id, out)
        s.commit()
    log.info("cloud account %s synced: %s in %.2f s (%d change(s))%s", account_id, status, out["seconds"],
             out["changed"], f": {reason}" if reason else "")
    return out


def _why(exc: BaseException) -> str:
    if isinstance(exc, DriverError):
        return str(exc)
    return getattr(exc, "details", None) or str(exc) or type(exc).__name__


# ---- the runner in every replica -------------------------------------------------------------------
def claim(db: Any, owner: str) -> str | None:
    """A queued account (or one whose syncing replica died: its lease expired) for ``owner``."""
    with db.session() as s:
        cands = list(s.scalars(select(Cloudaccount.id).where(
            or_(Cloudaccount.sync_status == "queued", Cloudaccount.sync_status == "syncing"))
            .order_by(Cloudaccount.updated_at).limit(20)))
    for aid in cands:
        with db.session() as s:
            if not try_acquire(s, lease_name(aid), owner, LEASE_S):
                continue
        with db.session() as s:
            begin_write(s, background=True)
            res = s.execute(update(Cloudaccount).where(Cloudaccount.id == aid,
                                                       Cloudaccount.sync_status.in_(("queued", "syncing")))
                            .values(sync_status="syncing"))
            s.commit()
        if res.rowcount == 1:  # type: ignore[attr-defined]
            return aid
        with db.session() as s:
            release(s, lease_name(aid), owner)
    return None


def run_one(db: Any, owner: str, list_threads: int = LIST_THREADS) -> dict[str, Any] | None:
    aid = claim(db, owner)
    if aid is None:
        return None
    try:
        return sync_account(db, aid, owner, _scope(db, aid), list_threads)
    except _LostLease:
        log.warning("cloud account %s: another replica took its sync over", aid)
        return None
    except Exception as exc:  # a bug: the account must not stay 'syncing' for ever
        log.exception("cloud account %s: sync failed", aid)
        report = Report()
        report.error("sync", _why(exc))
        return _finish(db, aid, report, "partial", f"the sync stopped: {_why(exc)}")
    finally:
        with db.session() as s:
            release(s, lease_name(aid), owner)


class Syncer:
    """Threads that run queued syncs (a separate pool: a sync may take minutes)."""

    def __init__(self, db: Any, owner: str, threads: int = 1, poll_s: float = IDLE_POLL_S,
                 list_threads: int = LIST_THREADS) -> None:
        self.db, self.owner, self.threads, self.poll_s = db, owner, threads, poll_s
        self.list_threads = list_threads
        self._loops = Loops(log, WAKEUP)

    def start(self) -> None:
        for i in range(self.threads):
            self._loops.work(f"cloudsync-{i}", lambda: run_one(self.db, self.owner, self.list_threads) is not None,
                             self.poll_s, "cloud sync runner error", backoff_s=2.0)

    def stop(self, timeout: float = 10.0) -> None:
        self._loops.stop(timeout)


def _after_commit(session: Session) -> None:
    if session.info.pop("cloudsync_queued", False):
        WAKEUP.set()


def _after_rollback(session: Session) -> None:
    session.info.pop("cloudsync_queued", None)


def install_hooks() -> None:
    from sqlalchemy import event

    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)


install_hooks()


class CloudAccountSyncTask(TaskBase):
    """The task row of one sync (see ``queue``): made waiting; the Syncer wakes it with the outcome."""

    name = "CloudAccountSyncTask"

    def on_init(self, run: Run) -> None:
        run.wait("on_synced")

    def on_synced(self, run: Run) -> None:
        res = run.result()
        if res.get("status") != "connected":
            run.fail(f"the account is {res.get('status')}: {res.get('reason') or 'see cloud-account-show'}")
        run.complete()

