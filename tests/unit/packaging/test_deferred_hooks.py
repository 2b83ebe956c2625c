"""Deferred PyInstaller runtime hooks run exactly when their module is first imported (or used)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.controller import REPO

sys.path.insert(0, str(REPO / "packaging" / "pyinstaller"))
import deferred_hooks

PROBE = """
import sys
exec(open(sys.argv[1]).read())
assert "json" not in sys.modules and "inspect" not in sys.modules
import json
assert json.PATCHED == 1, "hook ran after import"
import inspect
assert not hasattr(inspect, "HOOKED"), "inspect's hook waits for the first getsourcefile call"
assert inspect.getsourcefile(json).endswith("!patched")
assert inspect.HOOKED == 1
assert inspect.getsourcefile(json).endswith("!patched") and inspect.HOOKED == 1  # once
import json as again
assert again.PATCHED == 1
print("ok")
"""

HOOKS = {
    "json": "import json\njson.PATCHED = getattr(json, 'PATCHED', 0) + 1\n",
    "inspect": ("def _h():\n    import inspect\n    orig = inspect.getsourcefile\n"
                "    inspect.getsourcefile = lambda o: orig(o) + '!patched'\n"
                "    inspect.HOOKED = getattr(inspect, 'HOOKED', 0) + 1\n_h()\n"),
}


def test_hooks_run_on_first_import_and_first_call(tmp_path: Path) -> None:
    hook = tmp_path / "rth.py"
    hook.write_text(deferred_hooks.render(HOOKS))
    r = subprocess.run([sys.executable, "-I", "-c", PROBE, str(hook)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_deferred_hooks_exist_in_this_pyinstaller() -> None:
    try:
        import PyInstaller
    except ImportError:
        pytest.skip("PyInstaller not installed")
    rth = Path(PyInstaller.__file__).parent / "hooks" / "rthooks"
    for name, module in deferred_hooks.DEFERRED.items():
        text = (rth / f"{name}.py").read_text()
        assert f"import {module}" in text  # the hook still patches the module it is deferred to
    assert "getsourcefile" in (rth / "pyi_rth_inspect.py").read_text()
