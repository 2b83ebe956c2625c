"""``--wait``: follow the tasks an async command started until they end, and say how they ended.

    @wait_options()                      # adds --wait and --timeout
    def server_start(obj, idents, wait, timeout): ...
        follow(obj.client(), [Target("server vm1", task_id)], timeout) if wait else None

On a terminal a rich display shows each task's stage (one bar for a batch create: N of M servers);
otherwise one line per state change goes to stderr, so ``-o json`` on stdout stays parseable.
A failed task ends the command with exit 1 and the task's reason; running out of time exits 1 too
and says the task goes on. Only the task API is read (``GET /tasks/<id>``, its children by
``parent_task_id``): no command needs its own polling loop.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

S = "compute_v2"
FINISHED = ("done", "failed")
POLL_S = 0.3


def wait_options(default_timeout: float = 900.0, timeout_flag: str = "--timeout") -> Callable[[Any], Any]:
    """``--wait`` and its ``--timeout`` (seconds; a command whose own ``--timeout`` means something else
    passes ``timeout_flag="--wait-timeout"``)."""
    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option(timeout_flag, "wait_timeout", type=click.FloatRange(min=0.1), default=default_timeout,
                         show_default=True, help="With --wait: give up waiting after this many seconds "
                         "(the task goes on)")(f)
        return click.option("--wait", is_flag=True,
                            help="Wait until the task ends, showing its stages; exit 1 with the reason "
                                 "if it fails")(f)
    return deco


@dataclass
class Target:
    """One task to follow; ``label`` names what it works on (e.g. "server vm1")."""

    label: str
    task_id: str
    batch_total: int = 0  # >0: a batch task whose children are counted in one bar
    task: dict[str, Any] = field(default_factory=dict)
    children: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.task.get("status") in FINISHED

    def state(self) -> str:
        """What a person wants to read: the stage (or the child's stage), then the status."""
        t = self.task
        if not t:
            return "submitted"
        if t.get("status") == "done":
            return "done"
        if t.get("status") == "failed":
            return "failed: " + (t.get("reason") or "no reason given")
        if self.batch_total:
            done = sum(1 for c in self.children if c.get("status") in FINISHED)
            stage = _stage(t.get("stage", ""))
            return f"{stage}: {done} of {self.batch_total} finished" if self.children else stage
        active = [c for c in self.children if c.get("status") not in FINISHED]
        if active:
            return _stage(active[0].get("stage", "")) + f" ({active[0].get('task_name', '')})"
        return f"{_stage(t.get('stage', ''))} ({t.get('status', '')})"


def _stage(stage: str) -> str:
    s = stage[3:] if stage.startswith("on_") else stage
    return s.replace("_", " ") or "starting"


class _Display:
    """Rich progress on a terminal, plain lines elsewhere (CI logs, pipes)."""

    def __init__(self, targets: list[Target]) -> None:
        self.targets = targets
        self.tty = sys.stderr.isatty()
        self.last: dict[int, str] = {}
        self._progress: Any = None
        self._rows: dict[int, Any] = {}

    def __enter__(self) -> _Display:
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TimeElapsedColumn(),
                                      console=Console(stderr=True), transient=False)
            self._progress.start()
            for i, t in enumerate(self.targets):
                self._rows[i] = self._progress.add_task(f"{t.label}: submitted", total=t.batch_total or 1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self) -> None:
        for i, t in enumerate(self.targets):
            text = f"{t.label}: {t.state()}"
            if self._progress is not None:
                done = (sum(1 for c in t.children if c.get("status") in FINISHED) if t.batch_total
                        else int(t.finished))
                if t.finished:
                    done = t.batch_total or 1
                self._progress.update(self._rows[i], description=text, completed=done)
            elif self.last.get(i) != text:
                click.echo(text, err=True)
            self.last[i] = text


def _poll(client: Any, t: Target) -> None:
    t.task = client.get(S, f"/tasks/{t.task_id}").get("task", {})
    if t.task.get("status") == "waiting" or t.batch_total or t.finished:
        data = client.get(S, "/tasks", params={"parent_task_id": t.task_id, "limit": 1000, "details": "false"})
        t.children = [c for c in data.get("tasks", []) if c.get("parent_task_id") == t.task_id]


def follow(client: Any, targets: list[Target], timeout: float, *, sleep: Callable[[float], None] = time.sleep,
           clock: Callable[[], float] = time.monotonic) -> None:
    """Poll until every target's task has finished; raise ClickException naming each failure."""
    targets = [t for t in targets if t.task_id]
    if not targets:
        return
    end = clock() + timeout
    with _Display(targets) as display:
        while True:
            for t in targets:
                if not t.finished:
                    _poll(client, t)
            display.update()
            if all(t.finished for t in targets):
                break
            if clock() > end:
                left = ", ".join(t.label for t in targets if not t.finished)
                raise click.ClickException(f"still running after {timeout:g} s: {left} (the task goes on; "
                                           f"see task-show {next(t.task_id for t in targets if not t.finished)})")
            sleep(POLL_S)
    failures = []
    for t in targets:
        if t.task.get("status") == "failed":
            failures.append(f"{t.label}: {t.task.get('reason') or 'failed (no reason given)'}")
        for c in t.children:
            if c.get("status") == "failed" and c.get("reason") and c.get("reason") not in (t.task.get("reason") or ""):
                failures.append(f"  {c.get('obj_type', '')} {c.get('obj_name') or c.get('obj_id')}: {c['reason']}")
    if failures:
        for line in failures[1:]:
            click.echo(line, err=True)
        raise click.ClickException(failures[0] if len(failures) == 1 else
                                   f"{sum(1 for t in targets if t.task.get('status') == 'failed')} of "
                                   f"{len(targets)} failed; first: {failures[0]}")


def task_of(obj: Any) -> str:
    """The task an action's answer points at (servers and disks: active_task_id; save-image: task_id)."""
    if not isinstance(obj, dict):
        return ""
    inner = next(iter(obj.values())) if len(obj) == 1 and isinstance(next(iter(obj.values())), dict) else obj
    return str(inner.get("active_task_id") or inner.get("task_id") or "")


def follow_status(client: Any, service: str, path: str, key: str, label: str, *, busy: tuple[str, ...],
                  ok: tuple[str, ...], timeout: float, sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """For work without a task row (an image's intake): poll ``path`` while its status is ``busy``;
    one line per status; raise unless it ends in ``ok``. Returns the object as it ended."""
    end, last = clock() + timeout, ""
    while True:
        cur = client.get(service, path).get(key, {})
        status = str(cur.get("status", ""))
        if status != last:
            click.echo(f"{label}: {status}", err=True)
            last = status
        if status not in busy:
            break
        if clock() > end:
            raise click.ClickException(f"{label} is still {status} after {timeout:g} s (it goes on)")
        sleep(POLL_S)
    if status not in ok:
        why = cur.get("fail_reason") or cur.get("status_reason") or ""
        raise click.ClickException(f"{label} is {status}" + (f": {why}" if why else ""))
    return cur  # type: ignore[no-any-return]


def follow_gone(client: Any, service: str, path: str, label: str, *, timeout: float,
                sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
    """For a delete whose answer names no task (the row says ``deleting`` while its task runs):
    poll ``path`` until it answers 404; one line per status; raise if it ends in a ``*fail*`` status."""
    from core.errors import ResourceNotFoundError

    end, last, busy_seen = clock() + timeout, "", False
    while True:
        try:
            cur: Any = next(iter(client.get(service, path).values()), {})
        except ResourceNotFoundError:
            click.echo(f"{label}: deleted", err=True)
            return
        status = str(cur.get("status", "")) if isinstance(cur, dict) else ""
        if status != last:
            click.echo(f"{label}: {status}", err=True)
            last = status
        if "fail" in status:
            why = cur.get("fail_reason") or cur.get("status_reason") or ""
            raise click.ClickException(f"{label} is {status}" + (f": {why}" if why else ""))
        if busy_seen and not status.endswith("ing"):  # back from "deleting" (e.g. a cloud's eip: "ready")
            why = failed_reason(client, str(cur.get("id", "")))
            raise click.ClickException(f"{label} is {status} again: the delete failed" + (f": {why}" if why else ""))
        busy_seen = busy_seen or status.endswith("ing")
        if clock() > end:
            raise click.ClickException(f"{label} is still {status} after {timeout:g} s (it goes on)")
        sleep(POLL_S)


def tasks_on(client: Any, obj_id: str, task_name: str) -> set[str]:
    """Ids of the ``task_name`` tasks on object ``obj_id`` (for work whose answer names no task:
    the ids before a request, minus those after, is the task it queued)."""
    data = client.get(S, "/tasks", params={"obj_id": obj_id, "task_name": task_name, "limit": 1000,
                                            "details": "false"})
    return {str(t["id"]) for t in data.get("tasks", []) if t.get("obj_id") == obj_id}


def failed_reason(client: Any, obj_id: str) -> str:
    """The reason of the newest failed task on ``obj_id`` ("" if none says)."""
    if not obj_id:
        return ""
    data = client.get(S, "/tasks", params={"obj_id": obj_id, "status": "failed", "limit": 1, "details": "false",
                                            "order_by": "created_at", "order": "desc"})
    return next((str(t.get("reason") or "") for t in data.get("tasks", []) if t.get("obj_id") == obj_id), "")
