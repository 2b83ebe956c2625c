"""``console_sessions`` (migration branch ``agent``): one row per console token.

The token itself is never stored, only its SHA-256 (any replica can validate it). A session is
``issued`` (token handed out) → ``connecting`` (the token was redeemed by a websocket; the host's
agent is told on its next long poll) → ``dispatched`` (the agent took it) → ``open`` (bytes flow)
→ ``closed`` or ``failed`` (``reason``). A token is spent by its first redemption, whatever follows.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, StandardMixin, str36, str64, str255


class ConsoleSession(StandardMixin, Base):
    __tablename__ = "console_sessions"

    token_sha256: Mapped[str64] = mapped_column(unique=True)
    server_id: Mapped[str36] = mapped_column(index=True)
    host_id: Mapped[str36] = mapped_column(index=True)
    user_id: Mapped[str64]
    tenant_id: Mapped[str64] = mapped_column(default="")
    protocol: Mapped[str] = mapped_column(String(16))  # vnc | serial
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(16), default="issued", index=True)
    relay_url: Mapped[str255] = mapped_column(default="")  # the replica holding the browser side ("": any)
    endpoint: Mapped[str255] = mapped_column(default="")  # where the agent found the console
    reason: Mapped[str255] = mapped_column(default="")
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    bytes_up: Mapped[int] = mapped_column(BigInteger, default=0)  # client -> guest
    bytes_down: Mapped[int] = mapped_column(BigInteger, default=0)  # guest -> client
