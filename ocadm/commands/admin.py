"""ocadm admin: break-glass operations on the controller's database (no API, no token needed)."""
from __future__ import annotations

import re
import secrets
from pathlib import Path

import click

from ocadm.commands import data_dir_option, load_settings


@click.group("admin")
def admin() -> None:
    """Break-glass operations that work on the database directly."""


@admin.command("reset-password")
@data_dir_option
@click.option("--user", "user_name", default="admin", show_default=True, help="User name (or id)")
@click.option("--domain", default="Default", show_default=True, help="The user's domain (name or id)")
@click.option("--password", default=None,
              help="New password (default: generate one; prefer the prompt-free default over shell history)")
def reset_password(data_dir: Path | None, user_name: str, domain: str, password: str | None) -> None:
    """Set a user's password, unlock and enable it; rewrites rc_admin when it is the admin.

    Every token the user holds dies; running controllers notice within a second.
    """
    from core.audit import record
    from core.config import write_private
    from core.db.engine import Database
    from core.errors import ResourceNotFoundError
    from core.keystone.assignments import begin_write, bump_revision
    from core.keystone.auth import find_user_by_name, set_user_password
    from core.keystone.models import User
    from core.keystone.passwords import hash_password

    s = load_settings(data_dir)
    new = password or secrets.token_urlsafe(18)
    hashed = hash_password(new)  # before the write lock a running controller waits behind
    db = Database(s.database_url)
    try:
        with db.session() as session:
            begin_write(session)  # a running controller may write too: take the lock first
            user = session.get(User, user_name) or find_user_by_name(session, user_name, domain)
            if user is None:
                raise ResourceNotFoundError(f"no user {user_name} in domain {domain}")
            set_user_password(user, hashed)
            user.enabled = True
            bump_revision(session)
            record(session, None, service="identity", action="reset-password", obj_type="user", obj_id=user.id,
                   obj_name=user.name, notes="ocadm admin reset-password")
            session.commit()
            is_admin = (user.name, user.domain_id) == ("admin", "default")
            uid = user.id
    finally:
        db.dispose()
    rc = s.data_dir / "rc_admin"
    if is_admin and rc.exists():
        text = rc.read_text()
        quoted = "'" + new.replace("'", "'\\''") + "'"
        text = re.sub(r"^export OS_PASSWORD=.*$", lambda _m: f"export OS_PASSWORD={quoted}", text, flags=re.MULTILINE)
        write_private(rc, text)
        click.echo(f"Updated {rc}.")
    click.echo(f"Password of {user_name} ({uid}) reset; the user is unlocked and enabled.")
    if password is None:
        click.echo(f"New password (shown once): {new}")
