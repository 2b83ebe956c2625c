"""Join tokens and host agent identities (migration branch ``agent``).

A join token is stored as its SHA-256 only; it may be redeemed ``uses`` times (``used`` counts the
redemptions, ``used_at`` is the last one) and expires. Each redemption creates a keystone service
user for a host and an ``AgentBinding`` row: that user may act as the agent of exactly that host
(``core.hostapi.routes.access.guard``).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, StandardMixin, str36, str64, str255


class JoinToken(StandardMixin, Base):
    __tablename__ = "agent_join_tokens"

    token_sha256: Mapped[str64] = mapped_column(unique=True)
    zone_id: Mapped[str36] = mapped_column(ForeignKey("zones.id"))
    expires_at: Mapped[datetime]
    uses: Mapped[int] = mapped_column(default=1, server_default="1")  # redemptions allowed (agent_0002)
    used: Mapped[int] = mapped_column(default=0, server_default="0")  # redemptions so far
    used_at: Mapped[datetime | None] = mapped_column(default=None)  # the last redemption
    host_id: Mapped[str36 | None] = mapped_column(default=None)  # the host it last enrolled
    created_by: Mapped[str255] = mapped_column(default="")
    description: Mapped[str255] = mapped_column(default="")


class AgentBinding(StandardMixin, Base):
    __tablename__ = "agent_bindings"

    user_id: Mapped[str64] = mapped_column(unique=True)  # the keystone service user of the agent
    host_id: Mapped[str36] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
