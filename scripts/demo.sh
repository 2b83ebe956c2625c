#!/usr/bin/env bash
# demo.sh: set up, start the embedded controller and take a short tour with climc.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
DATA=${DEMO_DATA_DIR:-$PWD/.data/demo}
PORT=${DEMO_PORT:-30300}
LOG="$DATA.serve.log"
mkdir -p "$(dirname "$DATA")"
ocadm init --data-dir "$DATA" --port "$PORT" --force
ocadm serve --data-dir "$DATA" --with-agent >"$LOG" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null; wait $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$PORT/ping" >/dev/null 2>&1 && break
  python3 - "$PORT" <<'PY' 2>/dev/null && break || true
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/ping", timeout=1)
PY
  kill -0 $SERVE 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 0.1
done
# shellcheck disable=SC1091
source "$DATA/rc_admin"
run() { echo; echo "\$ $*"; "$@"; }
run ocadm status --data-dir "$DATA"
run climc endpoint-list
run climc service-list -o json -c name -c type
run climc token-issue -c user -c project -c roles -c expires_at
for extra in scripts/demo.d/*.sh; do
  [ -e "$extra" ] || continue
  # shellcheck disable=SC1090
  source "$extra"
done
echo
echo "Demo done. The controller was at http://127.0.0.1:$PORT (log: $LOG); credentials in $DATA/rc_admin."
