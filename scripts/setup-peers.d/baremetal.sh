#!/usr/bin/env bash
# bare-metal peers (called by .ci/run as root): OpenIPMI's ipmi_sim (an IPMI BMC simulator) and
# ipmitool (a second IPMI client), and sushy-tools' Redfish emulator in its own venv (its Flask
# stack stays out of the project's venv); pyghmi (the driver's SDK) in the project's venv.
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
CACHE=${CLOUDPODS_PEER_CACHE:-/var/cache/cloudpods-ci}
# shellcheck source=scripts/lib/apt.sh
. scripts/lib/apt.sh  # the working directory is the repository (above)
apt_install_missing openipmi ipmitool
"$PY" -c "import pyghmi" 2>/dev/null || "$PY" -m pip install -q "pyghmi>=1.5"
SV="$CACHE/sushy-venv"
if [ ! -x "$SV/bin/sushy-emulator" ]; then
  mkdir -p "$CACHE"
  "$PY" -m venv "$SV"
  "$SV/bin/pip" install -q "sushy-tools>=1.0" bcrypt
fi
echo "bare-metal peers ready: ipmi_sim ipmitool pyghmi $SV/bin/sushy-emulator"
# the bare-metal deploy kernel + ramdisk (tests/integration/test_baremetal_deploy.py), from the guest kernel
# scripts/setup-virt.sh unpacked; rebuilt only when scripts/deploy-ramdisk/init changed
if [ -d "${VIRT_WORK:-/tmp/cm-virt}/kroot" ]; then
  ./scripts/build-deploy-ramdisk.sh "$CACHE/deploy-ramdisk" "${VIRT_WORK:-/tmp/cm-virt}/kroot"
fi
