"""Cluster-wide leases in the database, so one replica runs each periodic job."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db.base import Base, str64, str128, utcnow


class DbLease(Base):
    __tablename__ = "db_leases"

    name: Mapped[str128] = mapped_column(primary_key=True)
    holder: Mapped[str64]
    expires_at: Mapped[datetime]


def try_acquire(session: Session, name: str, holder: str, ttl_s: float) -> bool:
    """Take or renew lease ``name`` for ``holder``; True if held after the call. Commits."""
    now = utcnow()
    until = now + timedelta(seconds=ttl_s)
    res = session.execute(
        update(DbLease)
        .where(DbLease.name == name, (DbLease.holder == holder) | (DbLease.expires_at < now))
        .values(holder=holder, expires_at=until)
    )
    if res.rowcount:  # type: ignore[attr-defined]
        session.commit()
        return True
    if session.scalar(select(DbLease.name).where(DbLease.name == name)) is not None:
        session.rollback()
        return False
    try:
        session.add(DbLease(name=name, holder=holder, expires_at=until))
        session.commit()
        return True
    except IntegrityError:
        session.rollback()
        return False


def release(session: Session, name: str, holder: str) -> None:
    session.execute(update(DbLease).where(DbLease.name == name, DbLease.holder == holder)
                    .values(expires_at=utcnow()))
    session.commit()
