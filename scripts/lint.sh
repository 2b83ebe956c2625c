#!/usr/bin/env bash
# lint.sh: ruff over the tree and mypy over the product's packages (strict for core/scheduler, core/tasks,
# core/agent, core/loader, core/host_protocol.py and drivers/: pyproject.toml's [[tool.mypy.overrides]];
# default elsewhere). The test command runs it first, so code that does not pass lands nowhere. Needs the venv (bootstrap.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff check"
.venv/bin/ruff check --quiet .
echo "== mypy core drivers climc ocadm (strict: scheduler, tasks, agent, loader, host_protocol, drivers)"
.venv/bin/mypy --no-error-summary core drivers climc ocadm
