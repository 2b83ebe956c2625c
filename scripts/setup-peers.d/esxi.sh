#!/usr/bin/env bash
# VMware peer (called by .ci/run): govmomi's simulator built from Debian's golang-github-vmware-govmomi-dev
# (PEERS.md "VMware") with tests/support/vcsim/main.go, cached under /var/cache/cloudpods-ci/vcsim (never in
# the repository), and pyvmomi in the venv. Idempotent; as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh  # the working directory is the repository (above)
apt_install_missing golang-go golang-github-vmware-govmomi-dev qemu-utils
"$PY" -c "import pyVmomi" 2>/dev/null || "$PY" -m pip install -q "pyvmomi>=8"
"$PY" -c "from tests.support import vcsim; print('vcsim ready:', vcsim.binary())"
