#!/usr/bin/env bash
# build-binary.sh: the one binary (PyInstaller one-folder) in dist/cloudpods-one/, with climc and
# ocadm symlinks beside it. `--onefile` also builds dist/cloudpods-one-onefile.
#
#   ./scripts/build-binary.sh [--onefile] [--python PATH] [--dist DIR] [--work DIR]
#
# Install it: copy dist/cloudpods-one/ to /opt/cloudpods-one and link
#   ln -s /opt/cloudpods-one/cloudpods-one /usr/local/bin/climc   (and ocadm)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ONEFILE=0
DIST=dist
WORK=build/pyinstaller
while [ $# -gt 0 ]; do
  case "$1" in
    --onefile) ONEFILE=1 ;;
    --python) PY="$2"; shift ;;
    --dist) DIST="$2"; shift ;;
    --work) WORK="$2"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "build-binary.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if ! "$PY" -c "import PyInstaller" 2>/dev/null; then
  echo "build-binary.sh: PyInstaller is missing: $PY -m pip install -e '.[build]'" >&2
  exit 1
fi
OUT=$DIST/cloudpods-one
t0=$(date +%s)
CLOUDPODS_ONEFILE=$ONEFILE "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$DIST" --workpath "$WORK" packaging/pyinstaller/cloudpods-one.spec
for prog in climc ocadm; do
  ln -sfn cloudpods-one "$OUT/$prog"
done
echo "built $OUT in $(( $(date +%s) - t0 ))s: $(du -sh "$OUT" | cut -f1) ($("$OUT/ocadm" --version))"
[ "$ONEFILE" = 1 ] && echo "one-file: $DIST/cloudpods-one-onefile $(du -sh "$DIST/cloudpods-one-onefile" | cut -f1)"
exit 0
