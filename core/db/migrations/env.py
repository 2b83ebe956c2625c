"""Alembic environment: the connection comes from core.db.migrate, never from alembic.ini."""
from __future__ import annotations

from alembic import context

import core.db.models  # noqa: F401  (registers every service's tables on Base.metadata)
from core.db.base import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `ocadm upgrade` (core.db.migrate)")

include_tables = config.attributes.get("include_tables")
extra = {}
if include_tables:  # only when core.db.devtools autogenerates one branch's revision
    from core.db.devtools import drop_tables_not_indexes, include_object_for

    extra["include_object"] = include_object_for(include_tables)
    extra["process_revision_directives"] = drop_tables_not_indexes

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    **extra,
)
with context.begin_transaction():
    context.run_migrations()
