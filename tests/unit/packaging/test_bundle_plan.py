"""The binary's hidden imports come from the code's static tables: nothing named there is left out."""
from __future__ import annotations

import importlib
import sys

import pytest

from tests.support.controller import REPO

sys.path.insert(0, str(REPO / "packaging" / "pyinstaller"))
import bundle_plan

# (module, attribute): every static "module:attr" table the runtime loads from by name
TABLES = [("climc.command_table", "COMMANDS"), ("ocadm.command_table", "COMMANDS"),
          ("core.api.app", "SERVICE_ROUTERS"), ("core.api.app", "BACKGROUND"), ("core.api.app", "ROOT_ROUTERS"),
          ("drivers.registry", "DRIVERS"),
          ("core.region.tasks", "REGION_TASKS"), ("core.region.registry", "MANAGERS")]


def _refs(value: object) -> set[str]:
    if isinstance(value, str):
        m = bundle_plan.REF.match(value)
        return {m.group(1)} if m else set()
    if isinstance(value, dict):
        return set().union(*(_refs(v) for v in value.values())) if value else set()
    if isinstance(value, (tuple, list)):
        return set().union(*(_refs(v) for v in value)) if value else set()
    return set()


@pytest.fixture(scope="module")
def plan() -> bundle_plan.Plan:
    return bundle_plan.plan(REPO, check_sdks=False)


@pytest.mark.parametrize("module,attr", TABLES)
def test_every_table_entry_is_a_hidden_import(plan: bundle_plan.Plan, module: str, attr: str) -> None:
    try:
        table = getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as e:
        pytest.skip(f"{module} not importable here: {e}")
    named = _refs(table)
    assert named <= set(plan.hidden) | set(plan.missing), sorted(named - set(plan.hidden))
    missing = named & set(plan.missing)
    assert not missing, f"{module}.{attr} names modules that do not exist: {sorted(missing)}"


def test_static_import_lists_and_parents_are_included(plan: bundle_plan.Plan) -> None:
    for mod in ("core.db.models", "core.keystone.policies", "climc.commands", "core"):
        assert mod in plan.hidden


def test_one_loader_imports_by_name(plan: bundle_plan.Plan) -> None:
    """Only core/loader.py imports modules by computed names (the one "module:attr" loader); every
    other module names what it loads in a module-level table the plan reads, and calls the loader."""
    computed = [str(f.relative_to(REPO)) for f in bundle_plan.source_files(REPO) if bundle_plan.dynamic_imports(f)[1]]
    assert computed == ["core/loader.py"], f"import by name through core.loader.load, not here: {computed}"


def test_no_module_attr_string_outside_a_module_level_table() -> None:
    """An inline ``_load("core.x:y")`` inside a function is invisible to the plan: the binary then
    lacks the module and fails at start (it happened with /metrics' router)."""
    import ast

    inline = []
    for f in bundle_plan.source_files(REPO):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        tabled = {id(n) for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value
                  for n in ast.walk(node.value)}
        inline += [f"{f.relative_to(REPO)}:{n.lineno} {n.value}" for n in ast.walk(tree)
                   if isinstance(n, ast.Constant) and isinstance(n.value, str) and bundle_plan.REF.match(n.value)
                   and id(n) not in tabled]
    assert not inline, f"move these into a module-level table: {inline}"


def test_table_refs_reads_nested_tuples(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "t.py"
    f.write_text('X = (("a", "/p", "core.x.api:router"),)\nY: dict[str, str] = {"k": "drivers.y:Z"}\n'
                 'def f():\n    importlib.import_module("core.lit")\n    importlib.import_module(f"core.{x}")\n'
                 '    return "core.not_a_table:x"\nURL = "http://host:8080"\n')
    assert bundle_plan.table_refs(f) == {"core.x.api", "drivers.y", "core.lit"}
    assert bundle_plan.dynamic_imports(f) == ({"core.lit"}, 1)


def test_migrations_travel_as_data() -> None:
    datas = bundle_plan.migration_datas(REPO)
    shipped = {src for src, _dest in datas}
    versions = list((REPO / "core" / "db" / "migrations" / "versions").glob("*.py"))
    assert versions and {str(v) for v in versions} <= shipped
    assert str(REPO / "core" / "db" / "migrations" / "env.py") in shipped
    assert all(dest.startswith("core/db/migrations") for _src, dest in datas)


def test_driver_sdks_are_bundled_when_present() -> None:
    from drivers.registry import SDKS

    mods = bundle_plan.sdk_modules(REPO)
    assert {mod for mod, _dist in SDKS.values()} <= set(mods)
