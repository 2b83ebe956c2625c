#!/usr/bin/env bash
# packaging peers (called by .ci/run): the shells whose completion scripts the tests load (zsh, fish),
# systemd-analyze for unit checks, and PyInstaller + kubernetes-validate in the venv for the binary and
# manifest tests. Idempotent; as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
missing=$(for p in zsh fish systemd; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [ -n "${missing// /}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >/dev/null \
    || { apt-get update -qq -o DPkg::Lock::Timeout=600 >/dev/null; \
         apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >/dev/null; }
fi
"$PY" -c "import PyInstaller, kubernetes_validate" 2>/dev/null \
  || "$PY" -m pip install -q "pyinstaller>=6.10" "kubernetes-validate>=1.30"
echo "packaging peers ready: zsh fish systemd-analyze pyinstaller kubernetes-validate"
