#!/usr/bin/env bash
# lint.sh: ruff over the tree and mypy (default strictness) over the product's packages. The test
# command runs it first, so code that does not pass lands nowhere. Needs the venv (bootstrap.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff check"
.venv/bin/ruff check --quiet .
echo "== mypy core drivers climc ocadm"
.venv/bin/mypy --no-error-summary core drivers climc ocadm
