#!/usr/bin/env bash
# VMware peer (called by .ci/run): govmomi's simulator built from Debian's golang-github-vmware-govmomi-dev
# (PEERS.md "VMware") with tests/support/vcsim/main.go, cached under /var/cache/cloudpods-ci/vcsim (never in
# the repository), and pyvmomi in the venv. Idempotent; as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
missing=$(for p in golang-go golang-github-vmware-govmomi-dev qemu-utils; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [ -n "${missing// /}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >/dev/null \
    || { apt-get update -qq -o DPkg::Lock::Timeout=600 >/dev/null; \
         apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >/dev/null; }
fi
"$PY" -c "import pyVmomi" 2>/dev/null || "$PY" -m pip install -q "pyvmomi>=8"
"$PY" -c "from tests.support import vcsim; print('vcsim ready:', vcsim.binary())"
