#!/usr/bin/env bash
# build-deploy-kernel.sh OUT_FILE — a small Linux kernel for the bare-metal deploy ramdisk: `make tinyconfig`
# plus scripts/deploy-ramdisk/kernel.config (NICs, disks, serial console and initramfs built in, no modules),
# from Debian's linux-source. About 1.5 MB instead of the 14 MB distribution kernel: on an emulated machine
# it is fetched, decompressed and booted in a fraction of the time (bench/baremetal_deploy.py).
# Needs: apt-get install linux-source flex bison bc libelf-dev (build-deploy-ramdisk.sh uses the result when
# DEPLOY_KERNEL names it). Rebuilt only when the fragment, this script or the source is newer than OUT_FILE.
# Takes minutes (a kernel build): the work tree is kept in KERNEL_WORK (default: OUT_FILE's folder/kernel-build).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: build-deploy-kernel.sh OUT_FILE}
FRAG="$HERE/deploy-ramdisk/kernel.config"
TAR=$(ls /usr/src/linux-source-*.tar.xz 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$TAR" ] || { echo "no kernel source: apt-get install linux-source flex bison bc libelf-dev" >&2; exit 1; }
if [ -s "$OUT" ] && [ "$OUT" -nt "$FRAG" ] && [ "$OUT" -nt "$0" ] && [ "$OUT" -nt "$TAR" ]; then
  echo "deploy kernel up to date: $OUT"; exit 0
fi
for t in flex bison bc make gcc lz4; do
  command -v $t >/dev/null || { echo "$t not found: apt-get install flex bison bc make gcc liblz4-tool" >&2; exit 1; }
done
mkdir -p "$(dirname "$OUT")"
W=${KERNEL_WORK:-$(dirname "$OUT")/kernel-build}
NAME=$(basename "$TAR" .tar.xz)
if [ ! -f "$W/$NAME/Makefile" ] || [ "$W/$NAME/Makefile" -ot "$TAR" ]; then
  rm -rf "${W:?}/$NAME"; mkdir -p "$W"
  # the documentation is not needed (but its Kconfig is sourced: an empty one does)
  tar -C "$W" -xJf "$TAR" --exclude="$NAME/Documentation"
  mkdir -p "$W/$NAME/Documentation" && : > "$W/$NAME/Documentation/Kconfig"
  touch "$W/$NAME/Makefile"
fi
S="$W/$NAME"; O="$W/obj"
mkdir -p "$O"
make -s -C "$S" O="$O" ARCH=x86_64 tinyconfig >/dev/null
"$S/scripts/kconfig/merge_config.sh" -m -O "$O" "$O/.config" "$FRAG" >/dev/null
make -s -C "$S" O="$O" ARCH=x86_64 olddefconfig >/dev/null
missing=$(grep -E '^CONFIG_[A-Z0-9_]+=y' "$FRAG" | while read -r l; do grep -qx "$l" "$O/.config" || echo "${l%=y}"; done)
[ -z "$missing" ] || echo "warning: not in the deploy kernel's config (dependencies?):" $missing >&2
make -s -C "$S" O="$O" ARCH=x86_64 -j"$(( $(nproc) + 1 ))" bzImage
cp "$O/arch/x86/boot/bzImage" "$OUT.tmp" && mv "$OUT.tmp" "$OUT" && chmod 644 "$OUT"
echo "deploy kernel: $OUT ($(stat -c %s "$OUT") bytes)"
