"""``climc --parallel-run N COMMAND ...``: run a command N times at once and summarise the latency,
as Cloudpods' climc does for stress runs. Each run is its own climc process (its own connection and
output, like N users); the token cache makes them skip the login after the first."""
from __future__ import annotations

import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import click


def _strip(args: list[str]) -> tuple[int, list[str]]:
    out, n, i = [], 0, 0
    while i < len(args):
        a = args[i]
        if a == "--parallel-run":
            if i + 1 >= len(args) or not args[i + 1].isdigit():
                raise click.UsageError("--parallel-run needs a count, e.g. --parallel-run 10 server-list")
            n, i = int(args[i + 1]), i + 2
            continue
        if a.startswith("--parallel-run="):
            v = a.split("=", 1)[1]
            if not v.isdigit():
                raise click.UsageError("--parallel-run needs a count, e.g. --parallel-run=10 server-list")
            n, i = int(v), i + 1
            continue
        out.append(a)
        i += 1
    if not 1 <= n <= 1000:
        raise click.UsageError("--parallel-run: give 1..1000")
    return n, out


def parallel_run(argv: list[str]) -> None:
    try:
        n, args = _strip(argv)
    except click.UsageError as e:
        e.show()
        sys.exit(2)

    def one(_i: int) -> tuple[float, int, str]:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "climc", *args], capture_output=True, text=True)
        last = (r.stderr.strip().splitlines() or [""])[-1]
        return (time.perf_counter() - t0) * 1000, r.returncode, last

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    ms = sorted(r[0] for r in results)
    failed = [r for r in results if r[1] != 0]
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    click.echo(f"{n} runs of `climc {' '.join(args)}` in {wall:.2f} s: ok {n - len(failed)}, failed {len(failed)}")
    click.echo(f"latency ms: min {ms[0]:.0f}  p50 {statistics.median(ms):.0f}  p95 {p95:.0f}  max {ms[-1]:.0f}")
    for _ms, code, last in failed[:5]:
        click.echo(f"  exit {code}: {last}", err=True)
    sys.exit(1 if failed else 0)
