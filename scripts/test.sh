#!/usr/bin/env bash
# test.sh: set up and run every test. Tests whose real peers (root, PostgreSQL, MariaDB, libvirtd+qemu,
# simulators) are missing skip with a visible reason; `.ci/run` installs the peers and sets
# CLOUDPODS_TEST_FULL=1, under which a missing peer fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
# lint and types first (seconds); CLOUDPODS_SKIP_LINT=1 when the same tree was linted already
[ "${CLOUDPODS_SKIP_LINT:-0}" = 1 ] || ./scripts/lint.sh
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
