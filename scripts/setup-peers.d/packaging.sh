#!/usr/bin/env bash
# packaging peers (called by .ci/run): the shells whose completion scripts the tests load (zsh, fish),
# systemd-analyze for unit checks, and PyInstaller + kubernetes-validate in the venv for the binary and
# manifest tests. Idempotent; as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh  # the working directory is the repository (above)
apt_install_missing zsh fish systemd
"$PY" -c "import PyInstaller, kubernetes_validate" 2>/dev/null \
  || "$PY" -m pip install -q "pyinstaller>=6.10" "kubernetes-validate>=1.30"
echo "packaging peers ready: zsh fish systemd-analyze pyinstaller kubernetes-validate"
