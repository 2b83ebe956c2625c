"""What goes into the binary, computed from the code's own static tables (never a hand-kept list).

Our code loads modules by name from tables such as ``climc/command_table.py`` (``COMMANDS``),
``core/api/app.py`` (``SERVICE_ROUTERS``, ``BACKGROUND``), ``drivers/registry.py`` (``DRIVERS``),
``core/tasks/registry.py`` and ``core/region/registry.py``. PyInstaller cannot see those imports,
so every module-level string of the form ``"core.x.y:attr"`` in our packages is read here (with
``ast``, without importing anything) and becomes a hidden import. A table that another engineer
adds tomorrow is picked up the same way. The static import lists (``core/db/models.py``,
``core/keystone/policies/__init__.py``) are followed by PyInstaller itself; they are named here too
so a change to how they are imported cannot drop them silently.

Used by ``cloudpods-one.spec`` and by ``tests/unit/packaging``.
"""
from __future__ import annotations

import ast
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "climc", "ocadm", "drivers")
REF = re.compile(r"^((?:" + "|".join(PACKAGES) + r")(?:\.[A-Za-z_]\w*)+):([A-Za-z_]\w*)$")
# modules whose job is to import every model / every policy module by static import lines
STATIC_IMPORT_LISTS = ("core.db.models", "core.keystone.policies")
# third-party SDKs bundled when the build machine has them (drivers' SDKs come from drivers.registry.SDKS)
OPTIONAL_SDKS = ("libvirt", "pyVmomi", "pyVim", "pyghmi", "pyroute2", "pycdlib", "boto3", "psycopg", "pymysql")
# SDKs that import their own submodules by computed names, so every submodule must be collected
COLLECT_SUBMODULES = ("pyroute2", "pyVmomi", "pyghmi", "uvicorn")
# never useful at run time, and large
EXCLUDES = ("tkinter", "pytest", "_pytest", "mypy", "ruff", "IPython", "matplotlib", "setuptools", "pip",
            "openstackclient", "keystoneauth1", "openstack", "osc_lib", "cliff", "cmd2", "tests")


@dataclass
class Plan:
    hidden: dict[str, set[str]] = field(default_factory=dict)  # module -> files whose tables name it
    missing: dict[str, set[str]] = field(default_factory=dict)  # named by a table but not in the tree
    sdks: list[str] = field(default_factory=list)  # optional SDKs found importable on this machine

    @property
    def hiddenimports(self) -> list[str]:
        return sorted(self.hidden)


def _module_file(mod: str, repo: Path) -> Path | None:
    base = repo.joinpath(*mod.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def _module_name(path: Path, repo: Path) -> str:
    parts = list(path.relative_to(repo).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_import_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    return name in ("import_module", "__import__")


def dynamic_imports(path: Path) -> tuple[set[str], int]:
    """``import_module("x.y")`` calls in one file: (the literal names, how many take a computed name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    literal: set[str] = set()
    computed = 0
    for node in ast.walk(tree):
        if _is_import_call(node):
            assert isinstance(node, ast.Call)
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                literal.add(arg.value)
            else:
                computed += 1
    return literal, computed


def table_refs(path: Path) -> set[str]:
    """Modules named by "module:attr" strings in the module-level assignments of one file, plus
    literal ``import_module("...")`` names anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = {m for m in dynamic_imports(path)[0] if m.split(".")[0] in PACKAGES}
    for node in tree.body:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if value is None:
            continue
        for sub in ast.walk(value):
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                m = REF.match(sub.value)
                if m:
                    out.add(m.group(1))
    return out


def source_files(repo: Path = REPO) -> list[Path]:
    files: list[Path] = []
    for pkg in PACKAGES:
        files += sorted(p for p in (repo / pkg).rglob("*.py") if "migrations" not in p.parts)
    return files


def plan(repo: Path = REPO, check_sdks: bool = True) -> Plan:
    p = Plan()
    for f in source_files(repo):
        owner = str(f.relative_to(repo))
        for mod in table_refs(f):
            target = p.hidden if _module_file(mod, repo) else p.missing
            target.setdefault(mod, set()).add(owner)
    for mod in STATIC_IMPORT_LISTS:
        p.hidden.setdefault(mod, set()).add("bundle_plan.STATIC_IMPORT_LISTS")
    # every package on the way to a named module is importable too (PyInstaller adds them; be explicit)
    for mod in list(p.hidden):
        parts = mod.split(".")
        for i in range(1, len(parts)):
            p.hidden.setdefault(".".join(parts[:i]), set()).add(mod)
    if check_sdks:
        p.sdks = [m for m in sdk_modules(repo) if importlib.util.find_spec(m) is not None]
    return p


def sdk_modules(repo: Path = REPO) -> list[str]:
    """Driver SDKs from ``drivers.registry.SDKS`` (read with ast) plus the optional agent/cloud SDKs."""
    tree = ast.parse((repo / "drivers" / "registry.py").read_text(encoding="utf-8"))
    found: list[str] = []
    for node in tree.body:
        target: ast.expr | None = None
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign):
            target, value = node.targets[0], node.value
        if isinstance(target, ast.Name) and target.id == "SDKS":
            found += [mod for mod, _dist in ast.literal_eval(value).values()]
    return sorted(set(found) | set(OPTIONAL_SDKS), key=str.lower)


def migration_datas(repo: Path = REPO) -> list[tuple[str, str]]:
    """Alembic reads its scripts from files at run time: ship them as data, where migrate.py looks."""
    mig = repo / "core" / "db" / "migrations"
    out = []
    for f in sorted(mig.rglob("*")):
        if f.is_file() and f.suffix in (".py", ".mako", ".md") and "__pycache__" not in f.parts:
            out.append((str(f), str(f.parent.relative_to(repo))))
    return out


if __name__ == "__main__":
    pl = plan()
    for mod in pl.hiddenimports:
        print(mod)
    for mod, owners in sorted(pl.missing.items()):
        print(f"MISSING {mod} (named in {', '.join(sorted(owners))})")
    print("SDKs present:", ", ".join(pl.sdks) or "none")
