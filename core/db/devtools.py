"""Developer helper: autogenerate a migration revision for one branch.

    python -m core.db.devtools revision --branch keystone --tables 'ks_*' -m "add groups"
    python -m core.db.devtools revision --branch region --new-branch --tables 'servers,hosts' -m "region tables"

It diffs the models against a scratch SQLite database upgraded to the current heads, keeping
only the tables you name (other engineers may have models without revisions yet).
Always read the generated file: autogenerate misses server defaults and renames.
"""
from __future__ import annotations

import argparse
import fnmatch
import tempfile
from pathlib import Path

from sqlalchemy import create_engine


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("revision")
    r.add_argument("--branch", required=True)
    r.add_argument("--new-branch", action="store_true", help="start the branch on the `root_0001` revision")
    r.add_argument("--tables", required=True, help="comma-separated globs of table names")
    r.add_argument("--rev-id", default=None)
    r.add_argument("-m", "--message", required=True)
    a = p.parse_args()

    from alembic import command

    from core.db.migrate import alembic_config, upgrade

    globs = [g.strip() for g in a.tables.split(",") if g.strip()]
    with tempfile.TemporaryDirectory() as d:
        engine = create_engine(f"sqlite:///{Path(d) / 'scratch.db'}")
        upgrade(engine)
        with engine.connect() as conn:
            cfg = alembic_config(conn)
            cfg.attributes["include_tables"] = globs
            # a new branch starts beside the others on root_0001 (splice: root_0001 already has children)
            kwargs = ({"branch_label": a.branch, "head": "root_0001", "splice": True} if a.new_branch
                      else {"head": f"{a.branch}@head"})
            script = command.revision(cfg, message=a.message, autogenerate=True, rev_id=a.rev_id, **kwargs)
    print(f"wrote {script.path if script else '?'}")  # type: ignore[union-attr]


def include_object_for(globs: list[str]):  # type: ignore[no-untyped-def]
    def include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table is None or any(fnmatch.fnmatch(table, g) for g in globs)
    return include


if __name__ == "__main__":
    main()


def drop_tables_not_indexes(context, revision, directives):  # type: ignore[no-untyped-def]
    """In downgrades, drop a table without first dropping its indexes: MariaDB refuses to drop an
    index that backs a foreign key, and dropping the table removes its indexes anyway."""
    from alembic.operations import ops

    script = directives[0]
    for container in (script.downgrade_ops,):
        dropped = {o.table_name for o in container.ops if isinstance(o, ops.DropTableOp)}
        keep = []
        for o in container.ops:
            if isinstance(o, ops.ModifyTableOps) and o.table_name in dropped and all(
                    isinstance(x, ops.DropIndexOp) for x in o.ops):
                continue
            if isinstance(o, ops.DropIndexOp) and o.table_name in dropped:
                continue
            keep.append(o)
        container.ops = keep
