# Sourced by the setup scripts (scripts/setup-peers.d/*.sh): the Debian packages of a peer, installed
# when missing. apt_missing PKG... prints those not installed; apt_install_missing PKG... installs them
# (no index update unless the install fails without one). Needs root when something is missing.

apt_missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"
  done
}

apt_install_missing() {
  local missing
  missing=$(apt_missing "$@")
  if [ -n "${missing// /}" ]; then
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >/dev/null \
      || { apt-get update -qq -o DPkg::Lock::Timeout=600 >/dev/null; \
           apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >/dev/null; }
  fi
}
