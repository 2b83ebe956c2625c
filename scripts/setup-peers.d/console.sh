#!/usr/bin/env bash
# console peers (called by .ci/run, as root; idempotent): noVNC from Debian for the controller's console
# page (served from /usr/share/novnc, no CDN), and qemu-system-x86 whose VNC server is the real RFB
# peer of the fast-tier console tests (scripts/setup-virt.sh installs it too), and chromium, the browser
# of the real-tier console test (headless, over its DevTools websocket).
set -euo pipefail
# shellcheck source=scripts/lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"
apt_install_missing novnc qemu-system-x86 chromium
echo "console peers ready: noVNC in /usr/share/novnc, qemu-system-x86_64, chromium"
