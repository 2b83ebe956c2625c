#!/usr/bin/env bash
# public-cloud peers (called by .ci/run): boto3 (the aws extra) and moto's server, which plays AWS
# on loopback for tests/integration/test_cloud_aws.py and bench/cloud_sync.py. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -c "import boto3, moto.server" 2>/dev/null || "$PY" -m pip install -q "boto3>=1.34" "moto[server]>=5"
echo "cloud peers ready: boto3 $("$PY" -c 'import boto3; print(boto3.__version__)'), moto $("$PY" -c 'import moto; print(moto.__version__)')"
