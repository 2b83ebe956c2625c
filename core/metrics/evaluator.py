"""The alert evaluator: the periodic job ``alerts-evaluate`` (one replica at a time, under its DB lease).

For every enabled rule it reads ``reduce(metric)`` per watched object over the last
``window_seconds`` of minute buckets (core/metrics/history.py) and moves each object's state:

    ok --condition--> pending --held for_seconds--> alerting --condition false--> ok
    (for_seconds 0: ok -> alerting at once; pending -> ok when the condition stops holding)

Every change is an ``Alertrecord``; entering ``alerting`` and leaving it queue one notification per
notify config of the rule, in the same transaction as the new state, so a controller killed
mid-evaluation either did all of it or none of it: after a restart the alert fires exactly once.
An object without samples in the window counts as "condition false" (a stopped or deleted server
resolves its alert). Then ``deliver`` sends what is queued (core/metrics/notify.py).
"""
from __future__ import annotations

import operator
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db.base import new_uuid, utcnow
from core.failpoints import hit as failpoint
from core.metrics.history import MINUTE
from core.metrics.models import AlertNotification, Alertrecord, Commonalert, CommonalertState, MetricSample

COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}
REDUCERS: dict[str, Callable[[Any], Any]] = {"avg": func.avg, "max": func.max, "min": func.min}
RULES_PER_RUN = 2000


def _watched(session: Session, rule: Commonalert) -> dict[str, str]:
    """id -> name of the objects a rule watches now."""
    from core.region.models import Host, Server

    if rule.res_type == "host":
        stmt = select(Host.id, Host.name).where(Host.id == rule.res_id)
    elif rule.scope == "server":
        stmt = select(Server.id, Server.name).where(Server.id == rule.res_id, Server.pending_deleted.is_(False))
    else:  # project: every server of the rule's project
        stmt = select(Server.id, Server.name).where(Server.tenant_id == rule.tenant_id,
                                                    Server.pending_deleted.is_(False))
    return {str(i): str(n) for i, n in session.execute(stmt).all()}


def _values(session: Session, rule: Commonalert, ids: list[str], now: float) -> dict[str, float]:
    if not ids:
        return {}
    col = getattr(MetricSample, rule.metric)
    start = int((now - rule.window_seconds) // MINUTE * MINUTE)  # the bucket the window starts in
    rows = session.execute(select(MetricSample.obj_id, REDUCERS[rule.reduce](col))
                           .where(MetricSample.obj_id.in_(ids), MetricSample.resolution == MINUTE,
                                  MetricSample.ts >= start, MetricSample.ts <= now, col.is_not(None))
                           .group_by(MetricSample.obj_id)).all()
    return {str(o): float(v) for o, v in rows if v is not None}


def _step(rule: Commonalert, state: str, since: float, firing: bool, now: float) -> tuple[str, float]:
    if firing:
        if state == "ok":
            return ("alerting", now) if rule.for_seconds <= 0 else ("pending", now)
        if state == "pending" and now - since >= rule.for_seconds:
            return "alerting", now
        return state, since
    return ("ok", now) if state != "ok" else (state, since)


def evaluate_rule(session: Session, rule: Commonalert, now: float) -> int:
    """Move every watched object of ``rule``; returns the number of state changes. Caller commits."""
    objs = _watched(session, rule)
    values = _values(session, rule, list(objs), now)
    states = {s.res_id: s for s in session.scalars(select(CommonalertState).where(
        CommonalertState.alert_id == rule.id))}
    cmp = COMPARATORS[rule.comparator]
    changes = 0
    for res_id in set(objs) | set(states):
        st = states.get(res_id)
        cur, since = (st.state, st.since) if st else ("ok", now)
        value = values.get(res_id)
        firing = res_id in objs and value is not None and cmp(value, rule.threshold)
        new, new_since = _step(rule, cur, since, firing, now)
        if st is None and new == "ok":
            continue
        if st is None:
            st = CommonalertState(alert_id=rule.id, res_id=res_id, state="ok", since=now)
            session.add(st)
        st.value = value
        if new == cur:
            continue
        st.state, st.since = new, new_since
        changes += 1
        rec = Alertrecord(id=new_uuid(), alert_id=rule.id, alert_name=rule.name, level=rule.level,
                          state=new, prev_state=cur,
                          res_type=rule.res_type, res_id=res_id, res_name=objs.get(res_id, ""), metric=rule.metric,
                          value=value, comparator=rule.comparator, threshold=rule.threshold,
                          tenant_id=rule.tenant_id, domain_id=rule.domain_id, created_at=utcnow())
        session.add(rec)  # its id is set here: no flush per record (a storm of changes is one flush)
        # people hear of an alert and of its end; pending comes and goes quietly (it is in the history)
        if (new == "alerting" or cur == "alerting") and rule.notify_configs:
            for cid in rule.notify_configs:
                session.add(AlertNotification(alertrecord_id=rec.id, notify_config_id=cid, next_attempt_at=now))
            rec.notify_status = "queued"
        if new == "ok" and res_id not in objs:
            session.delete(st)  # the object is gone: nothing left to watch
    rule.last_eval_at = utcnow()
    return changes


def evaluate(session: Session, now: float | None = None) -> int:
    """One pass over every enabled rule, one transaction per rule."""
    now = time.time() if now is None else now
    ids = list(session.scalars(select(Commonalert.id).where(Commonalert.enabled.is_(True))
                               .order_by(Commonalert.id).limit(RULES_PER_RUN)))
    changes = 0
    for rid in ids:
        rule = session.get(Commonalert, rid)
        if rule is None or not rule.enabled:
            continue
        n = evaluate_rule(session, rule, now)
        if n:
            failpoint("alerts-before-commit")  # inert unless CLOUDPODS_FAILPOINTS names it (crash tests)
        changes += n
        session.commit()
    return changes


def run(session: Session, now: float | None = None) -> int:
    """The periodic job: evaluate, then deliver the notifications that are due."""
    from core.metrics.notify import deliver

    return evaluate(session, now) + deliver(session, now)


def states_of(session: Session, rule_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """rule id -> its objects' current states (for ``commonalert show``)."""
    out: dict[str, list[dict[str, Any]]] = {r: [] for r in rule_ids}
    if rule_ids:
        for s in session.scalars(select(CommonalertState).where(CommonalertState.alert_id.in_(rule_ids))):
            out[s.alert_id].append({"res_id": s.res_id, "state": s.state, "value": s.value})
    return out
