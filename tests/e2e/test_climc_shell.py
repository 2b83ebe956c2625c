"""``climc`` with no arguments is a shell (here fed from stdin, as a script); ``--parallel-run N``
repeats a command concurrently and summarises the latency."""
from __future__ import annotations

import json

from tests.support.controller import Controller


def test_bare_climc_runs_each_line_and_survives_errors(controller: Controller) -> None:
    script = "server-list -o json --limit 1\n# a comment\nno-such-cmd\nzone-show no-such-zone\n" \
             "zone-list -o json\nexit\nserver-list\n"
    r = controller.climc(input=script)
    assert "Traceback" not in r.stderr
    first, _, rest = r.stdout.partition("\n}\n")
    assert json.loads(first + "\n}")["limit"] == 1
    assert json.loads(rest)["data"], rest  # the line after the errors ran too
    assert "No such command 'no-such-cmd'" in r.stderr and "no-such-zone" in r.stderr
    assert r.stdout.count('"data"') == 2  # nothing after exit


def test_parallel_run_summarises(controller: Controller) -> None:
    r = controller.climc("--parallel-run", "3", "zone-list")
    assert r.returncode == 0, r.stderr
    assert "3 runs of `climc zone-list`" in r.stdout and "ok 3, failed 0" in r.stdout and "p95" in r.stdout
    r = controller.climc("--parallel-run", "2", "zone-show", "no-such-zone")
    assert r.returncode == 1 and "failed 2" in r.stdout


def test_readme_forecast_says_no_and_why(controller: Controller, cirros_image: dict[str, object]) -> None:
    # README's example, without a NAME as Cloudpods' climc writes it
    r = controller.climc("scheduler-forecast", "--ncpu", "2", "--mem-spec", "4t", "--disk", "cirros",
                         "--net", "default")
    assert r.returncode == 0, r.stderr
    assert "Can create: NO" in r.stdout and "Why: " in r.stdout  # (no host here; the demo names memory)
