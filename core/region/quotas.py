"""Per-project quotas: limits and usage in one row, reserved by one conditional UPDATE.

Reserve runs in the transaction that creates the resources, so either both commit or neither;
the UPDATE's WHERE clause re-checks every limit against the row's *current* usage, which makes
two concurrent reservations unable to exceed a limit together (the loser's UPDATE matches no row
and we read the row to say which limit it would exceed). A negative limit means unlimited.
"""
from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import BindParameter, Integer, Update, and_, bindparam, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db.engine import plain_rows
from core.errors import InputParameterError, OutOfQuotaError
from core.region.models import DomainQuota, Quota

KEYS = ("cpu", "memory", "storage", "servers", "ips", "images", "snapshot", "eip")
UNITS = {"cpu": "vCPU", "memory": "MB", "storage": "MB", "servers": "", "ips": "", "images": "", "snapshot": "",
         "eip": ""}
# eip: EIPs allocated from eip networks (eip-create, server-create --eip-bw), Cloudpods' default 10;
# a cloud's elastic IPs count against that cloud's own limits, not here
DEFAULTS = {"cpu": 256, "memory": 512 * 1024, "storage": 10 * 1024 * 1024, "servers": 100, "ips": 256,
            "images": 100, "snapshot": 100, "eip": 10}


def held_eips(session: Session, tenant_id: str) -> int:
    """EIPs the project holds on eip networks (what ``used_eip`` starts from when its row is made:
    EIPs made before the quota existed count too)."""
    from core.region.models import Eip

    return int(session.scalar(select(func.count()).select_from(Eip).where(
        Eip.tenant_id == tenant_id, Eip.manager_id.is_(None))) or 0)


def ensure(session: Session, tenant_id: str, domain_id: str = "default") -> Quota:
    row = session.get(Quota, tenant_id)
    if row is None:
        row = Quota(tenant_id=tenant_id, domain_id=domain_id or "default", **DEFAULTS,
                    used_eip=held_eips(session, tenant_id))
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            row = session.get(Quota, tenant_id)
            assert row is not None
    return row


def reserve(session: Session, tenant_id: str, domain_id: str = "default", **amounts: int) -> dict[str, int]:
    """Add ``amounts`` to the project's usage, or raise OutOfQuotaError naming every exceeded key."""
    want = {k: int(v) for k, v in amounts.items() if v}
    for k in want:
        if k not in KEYS:
            raise ValueError(f"unknown quota key {k}")
    if not want:
        return {}
    _check_domain_cap(session, domain_id, want)
    stmt = _reserve_stmt(tuple((k, v > 0) for k, v in want.items()))
    params = {"project": tenant_id, **{f"add_{k}": v for k, v in want.items()}}
    if plain_rows(session, stmt, params).rowcount == 1:
        return want
    if session.get(Quota, tenant_id) is None:  # the project's first reservation: make its row, try again
        ensure(session, tenant_id, domain_id)
        if plain_rows(session, stmt, params).rowcount == 1:
            return want
    row = session.scalar(select(Quota).where(Quota.tenant_id == tenant_id).execution_options(populate_existing=True))
    assert row is not None
    over = []
    for k, v in want.items():
        limit, used = getattr(row, k), getattr(row, f"used_{k}")
        if limit >= 0 and used + v > limit:
            unit = f" {UNITS[k]}" if UNITS[k] else ""
            over.append(f"{k} (requested {v}{unit}, used {used}, limit {limit})")
    raise OutOfQuotaError("out of quota: " + "; ".join(over or ["limits changed, retry"]))


@functools.cache
def _reserve_stmt(keys: tuple[tuple[str, bool], ...]) -> Update:
    """The conditional UPDATE for these keys ((key, adds more) pairs, in order), built once per shape:
    each addition is the bind parameter ``add_<key>``, the project ``project``. A plain SQL UPDATE
    (no ORM session sync: nothing here reads a cached Quota afterwards), run without the ORM."""
    conds = []
    for k, positive in keys:
        if positive:
            conds.append((getattr(Quota, k) < 0) | (getattr(Quota, f"used_{k}") + _add(k) <= getattr(Quota, k)))
    return (update(Quota).where(Quota.tenant_id == bindparam("project"), and_(*conds))
            .values({f"used_{k}": getattr(Quota, f"used_{k}") + _add(k) for k, _p in keys})
            .execution_options(synchronize_session=False))


def _add(key: str) -> BindParameter[int]:
    return bindparam(f"add_{key}", type_=Integer)


_DOMAIN_CAP = (select(DomainQuota.__table__).where(DomainQuota.domain_id == bindparam("domain_id"))
               .with_for_update())  # the row's columns as read now (no ORM object that could be stale)


def _check_domain_cap(session: Session, domain_id: str, want: dict[str, int]) -> None:
    """A domain with a cap of its own (POST /quotas/domains/<d>): its projects' usage together plus
    ``want`` must stay within it. The cap row is locked, so two projects of one domain reserving at
    once are checked one after the other (domains without a cap pay one primary-key read)."""
    cap = plain_rows(session, _DOMAIN_CAP, {"domain_id": domain_id}).first()
    if cap is None:
        return
    over = []
    for k, v in want.items():
        limit = getattr(cap, k)
        if v <= 0 or limit < 0:
            continue
        used = int(session.scalar(select(func.coalesce(func.sum(getattr(Quota, f"used_{k}")), 0))
                                  .where(Quota.domain_id == domain_id)) or 0)
        if used + v > limit:
            unit = f" {UNITS[k]}" if UNITS[k] else ""
            over.append(f"{k} (requested {v}{unit}, used {used} in the domain, domain limit {limit})")
    if over:
        raise OutOfQuotaError(f"out of domain {domain_id}'s quota: " + "; ".join(over))


def _limit(key: str, v: Any, minus_one: str) -> int:
    """A quota limit as stored: an integer >= 0, or -1 (``minus_one`` says what it means). -5 was
    stored and read as unlimited by every check (``< 0``); a typo must not lift a quota silently."""
    if isinstance(v, bool) or not isinstance(v, int) or v < -1:
        raise InputParameterError(f"{key}: must be an integer >= 0 (-1 for {minus_one}), not {v!r}"[:200])
    return v


def set_domain_limits(session: Session, domain_id: str, limits: dict[str, Any], reset: bool = False) -> DomainQuota:
    """Set (or with ``reset`` clear) a domain's own caps; -1 removes one cap."""
    row = session.get(DomainQuota, domain_id)
    if row is None:
        row = DomainQuota(domain_id=domain_id, **{k: -1 for k in KEYS})
        session.add(row)
    for k in KEYS if reset else ():
        setattr(row, k, -1)
    for k, v in limits.items():
        if k not in KEYS:
            raise InputParameterError(f"{k}: not a quota (known: {', '.join(KEYS)})")
        setattr(row, k, _limit(k, v, "no domain cap"))
    return row


def release(session: Session, tenant_id: str, amounts: dict[str, int]) -> None:
    """Give ``amounts`` back (never below zero). Callers keep what they hold to release it once."""
    vals = {}
    for k, v in amounts.items():
        if k in KEYS and v:
            col = getattr(Quota, f"used_{k}")
            vals[f"used_{k}"] = case((col - int(v) < 0, 0), else_=col - int(v))
    if vals:
        session.execute(update(Quota).where(Quota.tenant_id == tenant_id).values(vals)
                        .execution_options(synchronize_session=False))


def set_limits(session: Session, tenant_id: str, domain_id: str, limits: dict[str, Any]) -> Quota:
    row = ensure(session, tenant_id, domain_id)
    for k, v in limits.items():
        if k not in KEYS:
            raise InputParameterError(f"{k}: not a quota (known: {', '.join(KEYS)})")
        setattr(row, k, _limit(k, v, "unlimited"))
    return row


def to_dict(row: Quota) -> dict[str, Any]:
    out: dict[str, Any] = {"tenant_id": row.tenant_id, "domain_id": row.domain_id}
    for k in KEYS:
        out[k] = getattr(row, k)
        out[f"usage.{k}"] = getattr(row, f"used_{k}")
    return out
