"""Task execution: submit, run one stage at a time, fail cleanly, report from agents.

A stage is a method ``on_<something>(run)`` of a ``TaskBase`` subclass. The runner records the
stage (attempts + 1, stage log) and commits *before* calling it; the stage's own database work
and the stage's outcome (next stage / wait / done / fail) commit together afterwards. So a
crash mid-stage leaves the task at that stage: a restarted controller runs it again (stages are
idempotent: work items are unique per (task, stage), releases are idempotent) or, after
``max_attempts``, fails it through ``on_failed`` which releases what the task held.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar, NoReturn, TypeVar

from pydantic import BaseModel
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from core.api.context import Credential, cred_snapshot
from core.counters import TASK_STAGE_FAILURES, TASK_STAGE_SECONDS
from core.db.base import new_uuid, utcnow
from core.db.engine import begin_write, is_transient
from core.errors import CloudpodsError, ConflictError, InputParameterError, ResourceNotFoundError
from core.host_protocol import PAYLOADS, ContractError, ErrorResult, WorkKind, dump, error_result, parse_result
from core.tasks.models import DONE, FAILED, FINISHED, QUEUED, RUNNING, WAITING, Task, WorkItem
from core.tasks.payload_secrets import scrub_payload, seal_payload
from core.wakeup import Wakeup

log = logging.getLogger("cloudpods.tasks")
T = TypeVar("T")

# Set after any commit that queued a task, so idle workers in this process wake at once.
# (Agents long-polling this process are woken by core/host_wake.py: a flush that queues a work item
# names its host.)
WAKEUP = Wakeup()


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    n = int(session.info.pop("tasks_queued", 0))  # 0 when the worker took them itself
    if n:
        WAKEUP.set(n)  # as many idle workers as tasks: more would only claim nothing


def _queued(session: Session, n: int) -> None:
    """Count ``n`` more (or fewer) tasks made runnable by ``session``'s transaction."""
    session.info["tasks_queued"] = max(0, int(session.info.get("tasks_queued", 0)) + n)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop("tasks_queued", None)


class StageError(CloudpodsError):
    """A stage decided the task fails (the message is the task's reason)."""


class TaskBase:
    name: ClassVar[str]
    max_attempts: ClassVar[int] = 3

    def on_init(self, run: Run) -> None:
        run.complete()

    def on_failed(self, run: Run, reason: str) -> None:
        """Release what the task held. Must be idempotent: it may run after a partial stage."""


class Run:
    """What a stage sees: the session, the task row and ways to say what happens next."""

    def __init__(self, session: Session, task: Task, impl: TaskBase) -> None:
        self.session = session
        self.task = task
        self.impl = impl
        self.outcome: tuple[str, Any] | None = None
        self.spawned: list[Task] = []

    @property
    def params(self) -> dict[str, Any]:
        return self.task.params

    def set_params(self, **kw: Any) -> None:
        self.task.params = {**self.task.params, **kw}

    def result(self) -> dict[str, Any]:
        """What the agent (or the sub-tasks) reported for the stage that woke this one."""
        return dict(self.task.params.get("__result__") or {})

    def result_of(self, kind: WorkKind) -> Any:
        """The report of the work item that woke this stage, as the kind's result model."""
        try:
            return parse_result(kind, self.result())
        except ContractError as exc:
            raise StageError(str(exc)) from None

    def result_reason(self) -> str:
        r = self.result()
        return str(r.get("__reason__") or r.get("reason") or "the agent reported a failure")

    def outside_transaction(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` (a call to a cloud's API, seconds perhaps) with no transaction open, so no
        lock is held meanwhile; the stage goes on in a new write transaction. Read what ``fn``
        needs first; nothing may be changed before (it would be committed without the outcome)."""
        s = self.session
        if s.new or s.dirty or s.deleted:
            raise RuntimeError("outside_transaction must come before the stage's first change")
        s.commit()
        try:
            return fn()
        finally:
            begin_write(s, background=True)
            s.refresh(self.task)

    # ---- outcomes ----------------------------------------------------------------------------
    def next(self, stage: str) -> None:
        self.outcome = ("next", stage)

    def wait(self, stage: str) -> None:
        self.outcome = ("wait", stage)

    def complete(self, **data: Any) -> None:
        if data:
            self.set_params(**data)
        self.outcome = ("done", None)

    def fail(self, reason: str) -> NoReturn:
        raise StageError(reason)

    # ---- side effects ------------------------------------------------------------------------
    def dispatch(self, host_id: str, kind: WorkKind, payload: BaseModel, then: str) -> WorkItem:
        """Queue a work item (a typed payload of the host contract) for a host; resume at ``then``.

        The item commits with the stage's outcome, in one transaction with whatever status the
        stage set: a server is never ``deploying`` without its work item, nor the reverse.
        """
        if not isinstance(payload, PAYLOADS[kind]):
            raise StageError(f"{kind.value}: payload must be a {PAYLOADS[kind].__name__}")
        s = self.session
        wi = s.scalar(select(WorkItem).where(WorkItem.task_id == self.task.id, WorkItem.stage == self.task.stage))
        if wi is None:
            wi = WorkItem(task_id=self.task.id, stage=self.task.stage, host_id=host_id, kind=kind.value,
                          payload=seal_payload({**dump(payload), "task_id": self.task.id}))
            s.add(wi)
            s.flush()
        self.wait(then)
        return wi

    def spawn(self, task_name: str, obj_type: str, obj_id: str, obj_name: str = "",
              params: dict[str, Any] | None = None) -> Task:
        t = submit(self.session, task_name, obj_type, obj_id, obj_name, params or {},
                   cred_dict=self.task.user_cred, parent_id=self.task.id, tenant_id=self.task.tenant_id,
                   domain_id=self.task.domain_id)
        self.spawned.append(t)
        return t

    def wait_children(self, stage: str) -> None:
        """Wait until every sub-task finished; resumes at ``stage`` (now, if none is left)."""
        self.session.flush()
        left = bool(self.spawned) or self.session.scalar(select(func.count()).select_from(Task).where(
            Task.parent_task_id == self.task.id, Task.status.not_in(FINISHED)))  # spawned here: not finished
        self.outcome = ("wait", stage) if left else ("next", stage)


def submit(session: Session, task_name: str, obj_type: str, obj_id: str, obj_name: str = "",
           params: dict[str, Any] | None = None, *, cred: Credential | None = None,
           cred_dict: dict[str, Any] | None = None, parent_id: str | None = None, tenant_id: str = "",
           domain_id: str = "", task_id: str | None = None) -> Task:
    """Add a queued task to ``session`` (it runs once the caller commits)."""
    uc = cred_dict if cred_dict is not None else cred_snapshot(cred)
    t = Task(task_name=task_name, obj_type=obj_type, obj_id=obj_id, obj_name=obj_name[:255],
             params=dict(params or {}), parent_task_id=parent_id, status=QUEUED, user_cred=uc,
             tenant_id=tenant_id or str(uc.get("project_id") or ""),
             domain_id=domain_id or str(uc.get("domain_id") or ""))
    t.id = task_id or new_uuid()  # now, not at flush: callers store it on the object at once
    session.add(t)
    _queued(session, 1)
    return t


# ---- running -------------------------------------------------------------------------------
def record_stage(s: Session, task_id: str, owner: str, lease_s: float) -> str | None:
    """In ``s`` (a write transaction): count an attempt of the claimed task's current stage and log
    it; the stage to run once ``s`` commits, or None (not ours, or failed: too many attempts)."""
    t = s.get(Task, task_id)
    if t is None or t.owner != owner or t.status != RUNNING:
        return None
    return _record(s, t, owner, lease_s)


def take(s: Session, t: Task, owner: str, lease_s: float) -> str | None:
    """Claim ``t`` for ``owner`` in ``s`` and record its stage (``record_stage``): ``t`` is a row
    ``s`` holds locked and found claimable, or one ``s`` made runnable itself."""
    t.status, t.owner = RUNNING, owner
    t.lease_expires_at = utcnow() + timedelta(seconds=lease_s)
    return _record(s, t, owner, lease_s)


def _record(s: Session, t: Task, owner: str, lease_s: float) -> str | None:
    """``record_stage`` of the task ``t`` (claimed by ``owner``, in ``s``)."""
    from core.tasks.registry import task_class

    try:
        impl = task_class(t.task_name)()
    except KeyError:
        _finish_failed(s, t, None, f"unknown task {t.task_name}")
        return None
    if t.attempts >= impl.max_attempts:
        _fail_task(s, t, impl, f"stage {t.stage} did not complete after {t.attempts} attempt(s)")
        return None
    t.attempts += 1
    t.lease_expires_at = utcnow() + timedelta(seconds=lease_s)
    t.stages_log = [*t.stages_log[-49:], {"stage": t.stage, "at": utcnow().isoformat(),
                                          "attempt": t.attempts, "by": owner}]  # which replica
    return t.stage


def execute(db: Any, task_id: str, owner: str, lease_s: float, recorded: str | None = None,
            task: Task | None = None) -> tuple[Task, str] | None:
    """Run the claimed task's stages until it waits, finishes or loses its claim. ``recorded``: the
    claim's transaction already recorded this stage (``record_stage``, committed): it runs at once.
    ``task``: the row as that transaction committed it (while it runs, only its owner changes a
    running task's row; a takeover is caught before the outcome commits): not read again.

    When the last outcome made another task runnable — a sub-task it spawned, or its parent whose
    last sub-task this was — the same commit claims that task for ``owner`` and records its stage
    (``take``): (that task as committed, the stage to run), for the caller to run next as it would a
    claimed one. One claim transaction less, and no other thread woken to find the task gone."""
    from core.tasks.registry import task_class

    for _ in range(100):  # a task never needs more stages in one go; bounds a buggy loop
        if recorded is not None:
            stage, recorded = recorded, None
        else:
            with db.session() as s:
                begin_write(s, background=True)
                rec = record_stage(s, task_id, owner, lease_s)
            if rec is None:
                return None
            stage = rec
        # the stage is recorded; now act
        with db.session() as s:
            begin_write(s, background=True)
            t = s.merge(task, load=False) if task is not None else s.get(Task, task_id)
            task = None  # read again after a rollback
            if t is None or t.owner != owner:
                return None
            impl = task_class(t.task_name)()
            task_name = t.task_name  # read now: after a rollback the row's attributes are expired
            run = Run(s, t, impl)
            method = getattr(impl, stage, None)
            try:
                if method is None:
                    if stage.endswith("_failed"):
                        raise StageError(str((t.params.get("__result__") or {}).get("__reason__") or
                                             f"{stage}: the agent reported a failure"))
                    raise StageError(f"task {t.task_name} has no stage {stage}")
                started = time.perf_counter()
                try:
                    method(run)
                finally:
                    TASK_STAGE_SECONDS.labels(task_name, stage).observe(time.perf_counter() - started)
                if run.outcome is None:
                    raise StageError(f"stage {stage} of {t.task_name} ended without an outcome")
                # the outcome commits only while the task is still ours: a stage that outlived its
                # lease (or went outside its transaction) may have been taken over by another
                # replica, whose run of the stage then counts, not this one (the row stays locked
                # until the commit; this also flushes the stage's changes, inside the retry below)
                ours = s.scalar(select(Task.owner).where(Task.id == task_id).with_for_update()) == owner
            except Exception as exc:
                s.rollback()
                if is_transient(exc) and t.attempts < impl.max_attempts:
                    # another transaction won a deadlock: the stage is idempotent, run it again (its
                    # attempts are counted; a stage that keeps losing fails after max_attempts)
                    log.info("task %s stage %s: %s; running it again", task_id, stage,
                             type(getattr(exc, "orig", exc)).__name__)
                    time.sleep(random.uniform(0.02, 0.3))
                    continue
                TASK_STAGE_FAILURES.labels(task_name, stage).inc()
                reason = exc.details if isinstance(exc, CloudpodsError) else f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, CloudpodsError):
                    log.exception("task %s stage %s failed", task_id, stage)
                _fail_in_new_tx(db, task_id, owner, reason)
                return None
            if not ours:
                s.rollback()
                log.warning("task %s stage %s: taken over by another controller meanwhile; its outcome "
                            "is dropped", task_id, stage)
                return None
            kind, arg = run.outcome
            then: Task | None = None  # a task this outcome made runnable, which this worker runs next
            if kind == "next":  # the next stage is recorded in this same commit (one transaction less)
                t.stage, t.attempts = arg, 0
                recorded = record_stage(s, task_id, owner, lease_s)
            elif kind == "wait":
                t.stage, t.attempts, t.status = arg, 0, WAITING
                t.owner, t.lease_expires_at = "", None
                then = next((c for c in run.spawned if c.status == QUEUED), None)
            elif kind == "done":
                t.status, t.finished_at, t.owner, t.lease_expires_at = DONE, utcnow(), "", None
                t.stage = "complete"
                then = _on_finished(s, t)
            if kind == "next":
                task = t  # as this commit leaves it
                continue
            if then is None:
                return None
            s.flush()  # a sub-task made by this stage gets its columns' defaults
            then_stage = take(s, then, owner, lease_s)
            _queued(s, -1)  # taken here: nobody else needs waking for it
        # committed: the task taken is this worker's to run
        return (then, then_stage) if then_stage is not None else None
    return None


def _fail_in_new_tx(db: Any, task_id: str, owner: str, reason: str) -> None:
    from core.tasks.registry import task_class

    with db.session() as s:
        begin_write(s, background=True)
        t = s.scalar(select(Task).where(Task.id == task_id).with_for_update())
        if t is None or t.status != RUNNING or t.owner != owner:  # finished, or taken over meanwhile
            return
        try:
            impl = task_class(t.task_name)()
        except KeyError:
            impl = None
        _fail_task(s, t, impl, reason)


def _fail_task(s: Session, t: Task, impl: TaskBase | None, reason: str) -> None:
    if impl is not None:
        try:
            with s.begin_nested():
                impl.on_failed(Run(s, t, impl), reason)
        except Exception:
            log.exception("task %s: on_failed raised", t.id)
            reason += " (releasing its resources also failed; see the controller log)"
    _finish_failed(s, t, impl, reason)


def _finish_failed(s: Session, t: Task, impl: TaskBase | None, reason: str) -> None:
    t.status, t.reason, t.finished_at = FAILED, reason[:4000], utcnow()
    t.owner, t.lease_expires_at = "", None
    t.stage = f"{t.stage}_failed" if not t.stage.endswith("_failed") else t.stage
    _on_finished(s, t)


def _on_finished(s: Session, t: Task) -> Task | None:
    """Wake the parent when its last sub-task finished (the parent row is locked first): the parent
    when it was queued."""
    s.flush()
    if not t.parent_task_id:
        return None
    parent = s.scalar(select(Task).where(Task.id == t.parent_task_id).with_for_update())
    if parent is None or parent.status != WAITING:
        return None
    left = s.scalar(select(func.count()).select_from(Task).where(
        Task.parent_task_id == parent.id, Task.status.not_in(FINISHED)))
    if left:
        return None
    parent.status, parent.run_after = QUEUED, utcnow()
    _queued(s, 1)
    return parent


# ---- agents report ---------------------------------------------------------------------------
def report(session: Session, task_id: str, body: dict[str, Any]) -> Task:
    """An agent's result for the task's current work item: wake the task at its next stage.

    ``__status__: error`` (Cloudpods' convention) routes to ``<stage>_failed``.
    """
    t = session.scalar(select(Task).where(Task.id == task_id).with_for_update())
    if t is None:
        raise ResourceNotFoundError(f"task {task_id} not found")
    if t.status != WAITING:
        raise ConflictError(f"task {task_id} is {t.status}, not waiting for a report")
    wi_id = body.get("work_item_id")
    stmt = select(WorkItem).where(WorkItem.task_id == t.id, WorkItem.status.in_(("queued", "dispatched")))
    if wi_id:
        stmt = stmt.where(WorkItem.id == str(wi_id))
    wi = session.scalar(stmt.order_by(WorkItem.created_at.desc()).limit(1))
    if wi is None:
        raise InputParameterError(f"task {task_id} has no open work item to report on")
    # the host contract: a result that does not parse fails the task with a reason, changes nothing else
    try:
        parsed = parse_result(wi.kind, body)
        failed = isinstance(parsed, ErrorResult)
        result = {k: v for k, v in body.items() if k != "work_item_id"}
    except ContractError as exc:
        failed, result = True, error_result(f"malformed report from host {wi.host_id}: {exc}")
    wi.status = "failed" if failed else "done"
    wi.result = result
    wi.payload = scrub_payload(wi.payload)  # the host has used the password: the row keeps none
    t.params = {**t.params, "__result__": wi.result}
    if failed:
        t.stage = f"{t.stage}_failed"
    t.status, t.run_after = QUEUED, utcnow()
    _queued(session, 1)
    return t
