#!/usr/bin/env bash
# console peers (called by .ci/run, as root; idempotent): noVNC from Debian for the controller's console
# page (served from /usr/share/novnc, no CDN), and qemu-system-x86 whose VNC server is the real RFB
# peer of the fast-tier console tests (scripts/setup-virt.sh installs it too), and chromium, the browser
# of the real-tier console test (headless, over its DevTools websocket).
set -euo pipefail
missing=$(for p in novnc qemu-system-x86 chromium; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [ -n "${missing// /}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >/dev/null \
    || { apt-get update -qq -o DPkg::Lock::Timeout=600 >/dev/null; \
         apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >/dev/null; }
fi
echo "console peers ready: noVNC in /usr/share/novnc, qemu-system-x86_64, chromium"
