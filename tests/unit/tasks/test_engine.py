"""The task engine on a real (SQLite) database: stages, failures, sub-tasks, reports, recovery."""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from core.db.base import utcnow
from core.db.engine import Database
from core.host_protocol import PowerPayload, ServerRef, WorkKind
from core.tasks.engine import Run, TaskBase, report, submit
from core.tasks.models import DONE, FAILED, QUEUED, RUNNING, WAITING, Task, WorkItem
from core.tasks.registry import EXTRA
from core.tasks.worker import Worker, claim_one

LOG: list[str] = []


class TwoStage(TaskBase):
    name = "TwoStage"

    def on_init(self, run: Run) -> None:
        LOG.append("init")
        run.next("on_second")

    def on_second(self, run: Run) -> None:
        LOG.append("second")
        run.complete(answer=42)


class Boom(TaskBase):
    name = "Boom"

    def on_init(self, run: Run) -> None:
        run.set_params(held=True)
        raise RuntimeError("disk on fire")

    def on_failed(self, run: Run, reason: str) -> None:
        LOG.append(f"released:{reason}")


class Parent(TaskBase):
    name = "Parent"

    def on_init(self, run: Run) -> None:
        for i in range(3):
            run.spawn("TwoStage", "thing", f"c{i}")
        run.wait_children("on_children_done")

    def on_children_done(self, run: Run) -> None:
        LOG.append("parent done")
        run.complete()


class OneChild(TaskBase):
    """A batch create's shape: one sub-task, then a last stage."""

    name = "OneChild"

    def on_init(self, run: Run) -> None:
        run.spawn("TwoStage", "thing", "c0")
        run.wait_children("on_children_done")

    def on_children_done(self, run: Run) -> None:
        LOG.append("parent done")
        run.complete()


class Agented(TaskBase):
    name = "Agented"

    def on_init(self, run: Run) -> None:
        run.dispatch("host-1", WorkKind.START, PowerPayload(server=ServerRef(id=SID)), then="on_started")

    def on_started(self, run: Run) -> None:
        LOG.append(f"agent said {run.result_of(WorkKind.START).guest_status.value}")
        run.complete()

    def on_failed(self, run: Run, reason: str) -> None:
        LOG.append(f"failed:{reason}")


SID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


class Crashy(TaskBase):
    """A stage that never finishes (as if the controller died in it every time)."""

    name = "Crashy"
    max_attempts = 2

    def on_failed(self, run: Run, reason: str) -> None:
        LOG.append("crashy released")


# what Slow's stage does while it is outside its transaction, past its lease
MEANWHILE: list[Callable[[], None]] = []


class Slow(TaskBase):
    """A stage that calls out (a cloud's API, say) for longer than its lease."""

    name = "Slow"

    def on_init(self, run: Run) -> None:
        lease = run.task.lease_expires_at
        assert lease is not None

        def call_out() -> None:
            while utcnow() <= lease:  # until the lease has run out
                time.sleep(0.05)
            for fn in MEANWHILE:
                fn()

        run.outside_transaction(call_out)
        LOG.append("slow stage ran")
        run.complete()


class Long(TaskBase):
    """A stage that calls out until its first lease is ``LONG_PAST_S`` behind, doing what ``MEANWHILE``
    says every 50 ms meanwhile."""

    name = "Long"

    def on_init(self, run: Run) -> None:
        lease = run.task.lease_expires_at
        assert lease is not None

        def call_out() -> None:
            while utcnow() <= lease + timedelta(seconds=LONG_PAST_S):
                for fn in MEANWHILE:
                    fn()
                time.sleep(0.05)

        run.outside_transaction(call_out)
        LOG.append("long stage ran")
        run.complete()


LONG_PAST_S = 2.0


@pytest.fixture(autouse=True)
def _register() -> Iterator[None]:
    LOG.clear()
    MEANWHILE.clear()
    for cls in (TwoStage, Boom, Parent, OneChild, Agented, Crashy, Slow, Long):
        EXTRA[cls.name] = cls
    yield
    EXTRA.clear()


def _submit(db: Database, name: str) -> str:
    with db.session() as s:
        return submit(s, name, "thing", "obj-1", "thing").id


def _task(db: Database, tid: str) -> Task:
    with db.session() as s:
        t = s.get(Task, tid)
        assert t is not None
        return t


def test_stages_run_in_order_and_are_logged(db: Database) -> None:
    tid = _submit(db, "TwoStage")
    assert Worker(db, "me").run_pending() == 1
    t = _task(db, tid)
    assert t.status == DONE and t.params["answer"] == 42
    assert LOG == ["init", "second"]
    assert [x["stage"] for x in t.stages_log] == ["on_init", "on_second"]


def test_failure_goes_to_on_failed_and_rolls_back_the_stage(db: Database) -> None:
    tid = _submit(db, "Boom")
    Worker(db, "me").run_pending()
    t = _task(db, tid)
    assert t.status == FAILED and "disk on fire" in t.reason
    assert "held" not in t.params  # the failed stage's writes were rolled back
    assert LOG == ["released:RuntimeError: disk on fire"]


def test_subtasks_wake_the_parent(db: Database) -> None:
    tid = _submit(db, "Parent")
    w = Worker(db, "me")
    w.run_pending()
    assert _task(db, tid).status == DONE
    assert LOG.count("second") == 3 and LOG[-1] == "parent done"


def test_agent_report_success_and_failure(db: Database) -> None:
    a, b = _submit(db, "Agented"), _submit(db, "Agented")
    w = Worker(db, "me")
    w.run_pending()
    assert _task(db, a).status == WAITING and _task(db, a).stage == "on_started"
    with db.session() as s:
        items = list(s.scalars(select(WorkItem)))
        assert len(items) == 2 and {i.kind for i in items} == {"guest-start"}
        report(s, a, {"guest_status": "running"})
        report(s, b, {"__status__": "error", "__reason__": "no such domain"})
    w.run_pending()
    assert _task(db, a).status == DONE and "agent said running" in LOG
    tb = _task(db, b)
    assert tb.status == FAILED and "no such domain" in tb.reason
    with db.session() as s:
        from core.errors import ConflictError

        with pytest.raises(ConflictError):
            report(s, a, {})  # finished tasks take no more reports


def test_a_malformed_report_fails_the_task_with_a_reason(db: Database) -> None:
    a = _submit(db, "Agented")
    w = Worker(db, "me")
    w.run_pending()
    with db.session() as s:
        report(s, a, {"guest_status": "flying"})  # not a guest state of the contract
    w.run_pending()
    t = _task(db, a)
    assert t.status == FAILED and "malformed report" in t.reason and "guest_status" in t.reason, t.reason
    assert [f"failed:{t.reason}"] == LOG  # on_failed ran (releases), the success stage never did


def test_restart_requeues_owned_tasks_at_their_stage(db: Database) -> None:
    """kill -9 mid-stage: the task is RUNNING, owned by us, lease not expired; a restart resumes it."""
    tid = _submit(db, "TwoStage")
    with db.session() as s:
        s.execute(update(Task).where(Task.id == tid).values(
            status=RUNNING, owner="ctl-a", stage="on_second", attempts=1,
            lease_expires_at=utcnow() + timedelta(minutes=5)))
    other = Worker(db, "ctl-b")
    assert other.run_pending() == 0  # another controller must not steal a live lease
    w = Worker(db, "ctl-a", threads=1)
    w.start()
    try:
        for _ in range(100):
            if _task(db, tid).status == DONE:
                break
            threading.Event().wait(0.05)
    finally:
        w.stop()
    assert _task(db, tid).status == DONE and LOG == ["second"]


def test_expired_lease_is_claimed_by_another_controller(db: Database) -> None:
    tid = _submit(db, "TwoStage")
    with db.session() as s:
        s.execute(update(Task).where(Task.id == tid).values(
            status=RUNNING, owner="dead", lease_expires_at=utcnow() - timedelta(seconds=1)))
    Worker(db, "alive").run_pending()
    assert _task(db, tid).status == DONE


def test_a_stage_that_keeps_dying_fails_cleanly(db: Database) -> None:
    tid = _submit(db, "Crashy")
    with db.session() as s:  # as if two controllers died inside on_init
        s.execute(update(Task).where(Task.id == tid).values(attempts=2))
    Worker(db, "me").run_pending()
    t = _task(db, tid)
    assert t.status == FAILED and "did not complete after 2" in t.reason
    assert LOG == ["crashy released"]


def test_claims_are_exclusive_across_threads(db: Database) -> None:
    with db.session() as s:
        for i in range(60):
            submit(s, "TwoStage", "thing", f"o{i}")
    claimed: list[str] = []
    lock = threading.Lock()

    def grab(k: int) -> None:
        while True:
            tid = claim_one(db, f"w{k}")
            if tid is None:
                return
            with lock:
                claimed.append(tid)

    threads = [threading.Thread(target=grab, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 60 and len(set(claimed)) == 60
    with db.session() as s:
        assert s.scalar(select(Task.id).where(Task.status == QUEUED)) is None


def test_a_stage_past_its_lease_is_not_taken_again_by_its_own_controller(db: Database) -> None:
    """Every worker thread of a controller claims under one owner: once a slow stage outlived its lease,
    another thread of the same controller claimed the task again and ran the stage a second time at
    once (bench/scale.py: one server's quota released twice). A live controller never takes over its
    own task; the lease is for other controllers taking over a dead one's."""
    tid = _submit(db, "Slow")
    again: list[str | None] = []
    MEANWHILE.append(lambda: again.append(claim_one(db, "me")))  # a second thread of the same controller
    Worker(db, "me", lease_s=0.3).run_pending()
    assert again == [None]
    assert _task(db, tid).status == DONE and LOG == ["slow stage ran"]


def test_two_threads_run_a_slow_stage_once(db: Database) -> None:
    tid = _submit(db, "Slow")
    seen_idle = threading.Event()
    MEANWHILE.append(lambda: time.sleep(0.5))  # the other thread looks for work meanwhile, every 20 ms
    MEANWHILE.append(seen_idle.set)
    w = Worker(db, "me", threads=2, idle_poll_s=0.02, lease_s=0.3)
    w.start()
    try:
        deadline = time.monotonic() + 60
        while _task(db, tid).status != DONE and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        w.stop()
    assert seen_idle.is_set() and _task(db, tid).status == DONE
    assert LOG == ["slow stage ran"]


def test_an_outcome_is_dropped_when_another_controller_took_the_task_over(db: Database) -> None:
    """The stage outlived its lease and another controller claimed the task meanwhile: that claim
    counts (it runs the stage again); the first run's outcome must not commit as well."""
    tid = _submit(db, "Slow")
    taken: list[str | None] = []
    MEANWHILE.append(lambda: taken.append(claim_one(db, "other")))
    Worker(db, "me", lease_s=0.3).run_pending()
    assert taken == [tid]
    t = _task(db, tid)
    assert (t.status, t.owner, t.stage) == (RUNNING, "other", "on_init")
    assert LOG == ["slow stage ran"]  # ran once, its outcome dropped


def test_a_running_stage_keeps_its_lease(db: Database) -> None:
    """With several replicas, a stage longer than its lease passed from one to the next (each claim
    an attempt) and failed after 3 attempts: while a stage runs, its controller renews the lease
    every lease/3, so another controller never takes a live one's task over."""
    tid = _submit(db, "Long")
    taken: list[str | None] = []
    MEANWHILE.append(lambda: taken.append(claim_one(db, "other")))  # another controller, all along
    w = Worker(db, "me", threads=1, idle_poll_s=0.05, lease_s=3.0)
    w.start()
    try:
        deadline = time.monotonic() + 90
        while _task(db, tid).status != DONE and not any(taken) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        w.stop()
    t = _task(db, tid)
    assert t.status == DONE and t.attempts == 1 and LOG == ["long stage ran"]
    assert {x["by"] for x in t.stages_log} == {"me"} and len(t.stages_log) == 1
    assert len(taken) > 10 and set(taken) == {None}


def test_a_stage_is_recorded_in_the_claim_or_the_previous_outcome(db: Database) -> None:
    """Recording a stage (attempts + 1, stages log) commits before it runs, in the same transaction as
    the claim or as the previous stage's outcome: three commits for a two-stage task, not five."""
    from sqlalchemy import event

    tid = _submit(db, "TwoStage")
    commits: list[int] = []

    def on_commit(conn: object) -> None:
        commits.append(1)

    event.listen(db.engine, "commit", on_commit)
    try:
        assert Worker(db, "me").run_pending() == 1
    finally:
        event.remove(db.engine, "commit", on_commit)
    t = _task(db, tid)
    assert t.status == DONE and LOG == ["init", "second"]
    assert [(x["stage"], x["attempt"], x["by"]) for x in t.stages_log] == [("on_init", 1, "me"), ("on_second", 1, "me")]
    # claim + on_init recorded; on_init's outcome + on_second recorded; done; the claim that finds none
    assert len(commits) == 4


def test_an_outcome_claims_the_task_it_made_runnable(db: Database) -> None:
    """A stage that spawns a sub-task and waits, and a sub-task whose end wakes its parent, claim that
    task in their outcome's commit (its stage recorded there too) and the worker runs it next: one
    claim for the three tasks, six commits instead of eight, and no other worker woken for them."""
    from sqlalchemy import event

    from core.tasks.engine import WAKEUP

    tid = _submit(db, "OneChild")
    commits: list[int] = []

    def on_commit(conn: object) -> None:
        commits.append(1)

    event.listen(db.engine, "commit", on_commit)
    seen = WAKEUP.generation()
    try:
        assert Worker(db, "me").run_pending() == 1  # one claim ran all three tasks
    finally:
        event.remove(db.engine, "commit", on_commit)
    assert WAKEUP.generation() == seen  # nothing was left queued for another worker
    t = _task(db, tid)
    assert t.status == DONE and LOG == ["init", "second", "parent done"]
    assert [(x["stage"], x["attempt"], x["by"]) for x in t.stages_log] == [
        ("on_init", 1, "me"), ("on_children_done", 1, "me")]
    with db.session() as s:
        child = s.scalars(select(Task).where(Task.parent_task_id == tid)).one()
        assert child.status == DONE and child.owner == "" and child.lease_expires_at is None
        assert [(x["stage"], x["attempt"]) for x in child.stages_log] == [("on_init", 1), ("on_second", 1)]
    # claim + on_init; on_init waits + the child claimed; child's on_init + on_second recorded;
    # child done + the parent claimed; parent done; the claim that finds none
    assert len(commits) == 6


def test_a_task_claimed_by_an_outcome_is_recorded_before_it_runs(db: Database) -> None:
    """The sub-task an outcome claims is committed running, leased and at its recorded stage before its
    stage runs (a crash then finds it as after a claim); siblings stay queued for any worker."""
    seen: list[tuple[str, str, int, bool]] = []

    class Peek(TaskBase):
        name = "Peek"

        def on_init(self, run: Run) -> None:
            with db.session() as other:  # another connection: only what was committed
                t = other.get(Task, run.task.id)
                assert t is not None
                seen.append((t.status, t.owner, t.attempts, t.lease_expires_at is not None))
                seen.append(("queued siblings", "", int(other.scalar(
                    select(func.count()).select_from(Task).where(Task.parent_task_id == t.parent_task_id,
                                                                 Task.status == QUEUED)) or 0), True))
            run.complete()

    class TwoPeeks(TaskBase):
        name = "TwoPeeks"

        def on_init(self, run: Run) -> None:
            run.spawn("Peek", "thing", "p0")
            run.spawn("Peek", "thing", "p1")
            run.wait_children("on_children_done")

        def on_children_done(self, run: Run) -> None:
            run.complete()

    EXTRA[Peek.name], EXTRA[TwoPeeks.name] = Peek, TwoPeeks
    tid = _submit(db, "TwoPeeks")
    w = Worker(db, "me")
    assert w.run_pending() == 2  # the first child ran with the parent's claim; its sibling needed one
    assert seen[:2] == [(RUNNING, "me", 1, True), ("queued siblings", "", 1, True)]
    assert _task(db, tid).status == DONE


def test_a_claimed_task_is_not_read_again_by_its_stages(db: Database) -> None:
    """The row the claim (or the previous stage's outcome) committed is what the next stage starts
    from: no stage reads the task again. What reads a task by id are locks: its owner before each
    outcome commits, and the parent when its last child ends."""
    from sqlalchemy import event

    tid = _submit(db, "OneChild")
    reads: list[str] = []

    def on_sql(conn: object, cursor: object, statement: str, *_: object) -> None:
        m = re.fullmatch(r"SELECT (.*?) FROM tasks WHERE tasks\.id = \S+( FOR UPDATE)?", " ".join(statement.split()))
        if m:
            reads.append(m.group(1).split(",")[0])  # a read by the ORM's get() is "tasks.id AS tasks_id"

    event.listen(db.engine, "before_cursor_execute", on_sql)
    try:
        assert Worker(db, "me").run_pending() == 1
    finally:
        event.remove(db.engine, "before_cursor_execute", on_sql)
    assert _task(db, tid).status == DONE and LOG == ["init", "second", "parent done"]
    # four outcomes: parent's on_init, child's on_init and on_second, parent's last stage; the
    # parent's lock when the child ends
    assert sorted(reads) == ["tasks.id"] + ["tasks.owner"] * 4


def test_a_commit_wakes_as_many_idle_workers_as_it_queued_tasks(db: Database,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from core.tasks.engine import WAKEUP

    calls: list[int | None] = []
    monkeypatch.setattr(WAKEUP, "set", lambda n=None: calls.append(n))
    with db.session() as s:
        for i in range(3):
            submit(s, "TwoStage", "thing", f"t{i}")
    assert calls == [3]
    calls.clear()
    tid = _submit(db, "Parent")
    assert calls == [1]
    Worker(db, "me").run_pending()
    assert _task(db, tid).status == DONE
    # the parent's three children: one it ran itself, two for whoever is idle; the last child's end
    # hands the parent to its own worker: nobody else is woken for it
    assert calls == [1, 2]
