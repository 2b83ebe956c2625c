#!/usr/bin/env bash
# bootstrap.sh: make .venv with cloudpods-one and its test tools installed (idempotent, fast when done).
# Installs Debian packages for native pieces (libvirt-python needs libvirt-dev; images need qemu-utils)
# when run as root or with passwordless sudo; otherwise says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-dev,kvm,baremetal,esxi,postgres,mysql}
APT_PKGS="pkg-config libvirt-dev gcc python3-dev qemu-utils"

apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null && sudo="sudo -n"; } || true
  if [ "$(id -u)" != 0 ] && [ -z "$sudo" ]; then
    echo "bootstrap: cannot apt-get install $* (not root, no sudo); install them yourself" >&2
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq -o DPkg::Lock::Timeout=600 >/dev/null || true
  $sudo apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "$@" >/dev/null
}

if command -v dpkg-query >/dev/null; then
  missing=$(for p in $APT_PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
  # python3-venv only matters for Debian's own python3
  if ! "$PY" -c 'import ensurepip' 2>/dev/null; then missing="$missing python3-venv"; fi
  [ -z "${missing// /}" ] || apt_install $missing
fi

stamp="$VENV/.cloudpods-stamp"
want=$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)-$EXTRAS
if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
if ! "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"; then
  echo "bootstrap: installing with [$EXTRAS] failed; retrying without the native kvm extra" >&2
  "$VENV/bin/python" -m pip install -q -e ".[dev,postgres,mysql]"
fi
echo "$want" > "$stamp"
