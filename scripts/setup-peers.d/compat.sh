#!/usr/bin/env bash
# Outside clients for the compatibility tests (called by .ci/run as root): Cloudpods' Python SDK
# (python-yunionclient; it imports httplib2 and prettytable without declaring them) and OpenStack's
# Tempest (identity API tests run against our keystone), in their own venv so their oslo stack stays
# out of the project's. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
CACHE=${CLOUDPODS_PEER_CACHE:-/var/cache/cloudpods-ci}
CV="$CACHE/compat-venv"
if [ ! -x "$CV/bin/tempest" ] || ! "$CV/bin/python" -c "import yunionclient.api.client" 2>/dev/null; then
  mkdir -p "$CACHE"
  "$PY" -m venv "$CV"
  "$CV/bin/pip" install -q "python-yunionclient==1.0.20180201" httplib2 prettytable "tempest>=40" stestr
fi
echo "compat peers ready: $CV/bin/tempest, yunionclient in $CV"
