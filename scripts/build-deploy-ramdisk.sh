#!/usr/bin/env bash
# build-deploy-ramdisk.sh OUT_DIR [KERNEL_ROOT] — the bare-metal deploy kernel + ramdisk the controller's
# PXE service boots (settings baremetal_deploy_kernel / baremetal_deploy_ramdisk):
#   OUT_DIR/deploy.kernel   a Linux kernel: $DEPLOY_KERNEL when set (the small one of
#                           scripts/build-deploy-kernel.sh, drivers built in), else KERNEL_ROOT/boot/vmlinuz-*
#                           (default: the Debian cloud kernel unpacked by scripts/setup-virt.sh in
#                           ${VIRT_WORK:-/tmp/cm-virt}/kroot)
#   OUT_DIR/deploy.initrd   static busybox + scripts/deploy-ramdisk/init (+ the NIC/disk modules of KERNEL_ROOT's
#                           kernel when it is the one)
# Needs busybox-static. Rebuilt only when the init script, this script or $DEPLOY_KERNEL is newer than the result.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: build-deploy-ramdisk.sh OUT_DIR [KERNEL_ROOT]}
KROOT=${2:-${VIRT_WORK:-/tmp/cm-virt}/kroot}
mkdir -p "$OUT"
if [ -s "$OUT/deploy.initrd" ] && [ "$OUT/deploy.initrd" -nt "$HERE/deploy-ramdisk/init" ] \
   && [ "$OUT/deploy.initrd" -nt "$0" ] && [ -e "$OUT/deploy.kernel" ] \
   && { [ -z "${DEPLOY_KERNEL:-}" ] || [ "$OUT/deploy.kernel" -nt "$DEPLOY_KERNEL" ]; }; then
  echo "deploy ramdisk up to date: $OUT"; exit 0
fi
if [ -n "${DEPLOY_KERNEL:-}" ]; then
  K=$DEPLOY_KERNEL; KVER=""
  [ -s "$K" ] || { echo "DEPLOY_KERNEL $K is not a file (scripts/build-deploy-kernel.sh builds one)" >&2; exit 1; }
else
  K=$(ls "$KROOT"/boot/vmlinuz-* 2>/dev/null | head -n 1)
  [ -n "$K" ] || { echo "no kernel in $KROOT/boot (run scripts/setup-virt.sh first)" >&2; exit 1; }
  KVER=${K##*/vmlinuz-}
fi
BB=$(command -v busybox || true)
[ -n "$BB" ] || { echo "busybox not found (apt-get install busybox-static)" >&2; exit 1; }
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
mkdir -p "$W"/bin "$W"/proc "$W"/sys "$W"/dev "$W"/lib/modules
cp "$BB" "$W"/bin/busybox
cp "$HERE/deploy-ramdisk/init" "$W"/init && chmod +x "$W"/init
M="$KROOT/lib/modules/$KVER/kernel"
: > "$W"/lib/modules/order
# load order matters (dependencies first); modules built into the kernel are simply absent
[ -n "$KVER" ] && for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
         drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci net/core/failover \
         drivers/net/net_failover drivers/net/virtio_net drivers/block/virtio_blk \
         drivers/net/ethernet/intel/e1000/e1000; do
  for f in "$M/$m.ko" "$M/$m.ko.xz"; do
    [ -f "$f" ] || continue
    case $f in *.xz) xz -dc "$f" > "$W/lib/modules/${m##*/}.ko";; *) cp "$f" "$W/lib/modules/";; esac
    echo "${m##*/}" >> "$W"/lib/modules/order
  done
done
(cd "$W" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$OUT/deploy.initrd.tmp"
cp "$K" "$OUT/deploy.kernel.tmp"
mv "$OUT/deploy.kernel.tmp" "$OUT/deploy.kernel"; mv "$OUT/deploy.initrd.tmp" "$OUT/deploy.initrd"
chmod 644 "$OUT/deploy.kernel" "$OUT/deploy.initrd"
echo "deploy ramdisk: $OUT/deploy.kernel $OUT/deploy.initrd"
