"""No import cycle at import time: the module-level imports of the product's packages form a DAG; with
the imports inside functions too, so do the modules', and the service packages' (core.keystone,
core.region, core.hostapi, ...) taken as wholes.

Walks every module's top-level imports with ``ast`` (imports under ``if TYPE_CHECKING:`` and inside
functions are left out: they run after every module is initialised, which is how a deliberate
late binding is written). A cycle here is a module that may be half-initialised when another
reads it; the message names the modules to untangle.
"""
from __future__ import annotations

import ast
from pathlib import Path

from tests.support.controller import REPO

PACKAGES = ("core", "drivers", "climc", "ocadm")


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for f in (REPO / pkg).rglob("*.py"):
            if "migrations" in f.parts:
                continue
            parts = list(f.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_imports(name: str, path: Path, known: dict[str, Path], lazy: bool = False) -> set[str]:
    """The known modules ``name`` imports when it is imported (its top-level statements); with
    ``lazy`` also those its functions import when they run."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = node.module or ""
        if node.level:
            here = name.split(".") if is_pkg else name.split(".")[:-1]
            here = here[: len(here) - (node.level - 1)]
            base = ".".join(here + ([base] if base else []))
        subs = [f"{base}.{a.name}" for a in node.names]
        # ``from pkg import sub`` needs pkg's attribute only when a name is not a submodule of it (the
        # package itself runs first either way, as for ``import pkg.sub``)
        return subs if all(m in known for m in subs) else [base, *subs]

    def walk(body: list[ast.stmt]) -> None:
        for n in body:
            if isinstance(n, ast.Import | ast.ImportFrom):
                for m in targets(n):
                    while m and m not in known:
                        m = m.rpartition(".")[0]
                    if m and m != name:
                        out.add(m)
            elif isinstance(n, ast.If):
                if not _is_type_checking(n.test):
                    walk(n.body)
                walk(n.orelse)
            elif isinstance(n, ast.Try):
                walk(n.body)
                for h in n.handlers:
                    walk(h.body)
                walk(n.orelse)
                walk(n.finalbody)
            elif lazy:
                walk([c for c in ast.iter_child_nodes(n) if isinstance(c, ast.stmt)])

    walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)).body)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_no_import_time_cycle_between_modules() -> None:
    known = _modules()
    graph = {m: module_imports(m, f, known) for m, f in known.items()}
    assert not cycles(graph), f"modules that import each other at import time: {cycles(graph)}"


def test_the_walk_finds_a_cycle(tmp_path: Path) -> None:
    """The test above can fail: two modules importing each other are reported, a lazy import is not."""
    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    a.write_text("from pkg import b\n")
    b.write_text("import pkg.a\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c\n")
    c.write_text("def f():\n    import pkg.a\n")
    known = {"pkg.a": a, "pkg.b": b, "pkg.c": c}
    graph = {m: module_imports(m, f, known) for m, f in known.items()}
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": set()}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_no_cycle_through_lazy_imports() -> None:
    """Counting imports inside functions too, the tree is a DAG: a late import is no licence for two
    modules to need each other (what both need goes in a third: core/region/guards.py,
    core/region/hosted.py, core/region/cloud/rows.py, core/region/managers/snapshot_base.py)."""
    known = _modules()
    graph = {m: module_imports(m, f, known, lazy=True) for m, f in known.items()}
    assert not cycles(graph), f"modules that import each other (inside functions too): {cycles(graph)}"


def test_the_lazy_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("import pkg.b\n")
    b.write_text("class K:\n    def f(self):\n        with open('x'):\n            from pkg import a\n")
    known = {"pkg.a": a, "pkg.b": b}
    assert module_imports("pkg.b", b, known) == set()
    assert module_imports("pkg.b", b, known, lazy=True) == {"pkg.a"}
    graph = {m: module_imports(m, f, known, lazy=True) for m, f in known.items()}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


# The service packages: each is one node of the package graph. core.api and core.db are the layers
# below them (contexts, deps, sessions) that also hold the composition roots (app.py mounts every
# service, db/models.py imports every table): they are not services and may reach up.
SERVICES = ("core.keystone", "core.region", "core.hostapi", "core.glance", "core.scheduler", "core.tasks",
            "core.agent", "core.console", "core.metrics")


def _service(module: str) -> str | None:
    return next((s for s in SERVICES if module == s or module.startswith(s + ".")), None)


def package_graph(known: dict[str, Path], lazy: bool = False) -> tuple[dict[str, set[str]], dict[tuple[str, str], str]]:
    """Which service package imports which (one example module pair per edge, for the message)."""
    graph: dict[str, set[str]] = {s: set() for s in SERVICES}
    why: dict[tuple[str, str], str] = {}
    for m, f in sorted(known.items()):
        a = _service(m)
        if a is None:
            continue
        for t in sorted(module_imports(m, f, known, lazy=lazy)):
            b = _service(t)
            if b is not None and b != a:
                graph[a].add(b)
                why.setdefault((a, b), f"{m} -> {t}")
    return graph, why


def test_no_cycle_between_service_packages() -> None:
    """A service package's modules may import another's, or be imported by it, not both, counting
    imports inside functions too (a late import is still a dependency): what two services share goes
    below both (core/host_protocol.py, the host contract; core/counters.py, the process's Prometheus
    counters; core/keystone/policies/*, every service's rules; core/region/enroll.py and
    migration_staging.py, which the host-facing routes use), whatever is made of two services sits above
    both (core/hostapi/local_agent.py and hollow.py: agents that enroll their hosts in the region), and
    a service made of several packages' routers or background threads is put together by
    core/api/app.py (SERVICE_ROUTERS, BACKGROUND). The layers, bottom up: keystone and
    agent (which imports no service); scheduler and glance; tasks; region; console and metrics; hostapi."""
    graph, why = package_graph(_modules(), lazy=True)
    found = cycles(graph)
    edges = [why[(a, b)] for c in found for a in c for b in c if (a, b) in why]
    assert not found, f"service packages that import each other: {found}; through {edges}"


def test_the_package_walk_finds_a_cycle(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("from core.region import x\n")
    b.write_text("import core.hostapi.y\n")
    known = {"core.hostapi.routes": a, "core.region.api": b, "core.region.x": b, "core.hostapi.y": a}
    graph, why = package_graph(known)
    assert "core.region" in graph["core.hostapi"] and "core.hostapi" in graph["core.region"]
    assert cycles(graph) == [["core.hostapi", "core.region"]]
    assert why[("core.hostapi", "core.region")] == "core.hostapi.routes -> core.region.x"


def test_the_host_agent_does_not_load_the_database_stack() -> None:
    """The agent runs on every host and keeps no database: its background loops (core.loops) must
    not pull in the task engine and SQLAlchemy (~0.2 s and ~20 MB at every agent start)."""
    import subprocess
    import sys

    probe = "import sys, core.agent.agent; print(sorted(m for m in ('sqlalchemy', 'core.tasks') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout
