#!/usr/bin/env bash
# setup-virt.sh — install and start the real peers of the KVM agent tests (Debian 12, as root,
# no systemd): libvirtd + qemu (software emulation), qemu-img, DHCP clients (busybox udhcpc,
# dhclient, dhcpcd), and a tiny guest (Debian cloud kernel + busybox initramfs) in $VIRT_WORK.
# Idempotent: a second run installs nothing and leaves a running libvirtd alone.
#
# Env: VIRT_WORK  where the guest kernel/initramfs go (default /tmp/cm-virt)
#      PYTHON     the project's python (default: <repo>/.venv/bin/python, else python3)
# Stop libvirtd afterwards with:  kill "$(cat /run/libvirtd.pid)"
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SELF=$(readlink -f "$0")
VIRT_WORK=${VIRT_WORK:-/tmp/cm-virt}
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$HERE/.venv/bin/python" ]; then PYTHON="$HERE/.venv/bin/python"; else PYTHON=python3; fi
fi
if [ "$(id -u)" != 0 ]; then echo "setup-virt.sh must run as root" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive

PKGS="pkg-config libvirt-dev libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils
      busybox-static isc-dhcp-client dhcpcd-base iproute2 gzip"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  apt-get update -qq -o DPkg::Lock::Timeout=600
  # shellcheck disable=SC2086
  apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends $missing >/dev/null
fi

# Python bindings the agent needs (the [kvm] extra); libvirt-python builds from sdist (~10 s).
if ! "$PYTHON" -c "import libvirt, pyroute2, pycdlib" 2>/dev/null; then
  "$PYTHON" -m pip install -q "libvirt-python>=9" "pyroute2>=0.7" "pycdlib>=1.14"
fi

# libvirtd's qemu driver resolves its compiled-in user before reading qemu.conf.
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
  useradd -r -g kvm -G libvirt-qemu -d /var/lib/libvirt -M -s /usr/sbin/nologin libvirt-qemu
mkdir -p /etc/libvirt /var/log/libvirt          # libvirtd -d exits 1 without /var/log/libvirt
want_conf='user = "root"
group = "root"
stdio_handler = "file"'
if [ "$(cat /etc/libvirt/qemu.conf 2>/dev/null)" != "$want_conf" ]; then
  printf '%s\n' "$want_conf" > /etc/libvirt/qemu.conf
  restart=1
else
  restart=0
fi
running() { [ -f /run/libvirtd.pid ] && kill -0 "$(cat /run/libvirtd.pid)" 2>/dev/null; }
if running && [ "$restart" = 1 ]; then
  pid=$(cat /run/libvirtd.pid); kill "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
running || libvirtd -d
timeout 60 "$PYTHON" - <<'EOF'
import time, libvirt
libvirt.registerErrorHandler(lambda c, e: None, None)
t0 = time.time()
while True:
    try:
        c = libvirt.open("qemu:///system"); c.getCapabilities(); c.close(); break
    except libvirt.libvirtError:
        time.sleep(0.1)
print(f"libvirtd ready after {time.time()-t0:.1f}s")
EOF

# Guest kernel: the Debian cloud kernel package, unpacked (never installed).
mkdir -p "$VIRT_WORK"
cd "$VIRT_WORK"
if [ ! -e vmlinuz ] || [ ! -d kroot/lib/modules ]; then
  KPKG=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
  rm -rf kroot
  apt-get download -qq "$KPKG" 2>/dev/null || { apt-get update -qq; apt-get download -qq "$KPKG"; }
  dpkg-deb -x "$KPKG"_*.deb kroot && rm -f "$KPKG"_*.deb
  KVER=${KPKG#linux-image-}
  ln -sf "kroot/boot/vmlinuz-$KVER" vmlinuz
fi
KVER=$(basename "$(readlink vmlinuz)"); KVER=${KVER#vmlinuz-}

# Tiny initramfs: static busybox + virtio-net modules. With `cm.net` on the kernel command line
# it runs udhcpc on eth0 and prints what it was given (CM-DHCP-OK: ... / CM-DHCP-FAIL); with
# `cm.stay` it keeps running (so a graceful shutdown can be tested) and powers off on ACPI.
if [ ! -s initrd.img ] || [ "$SELF" -nt initrd.img ]; then
  rm -rf initrd && mkdir -p initrd/bin initrd/proc initrd/sys initrd/dev initrd/lib/modules initrd/usr/share/udhcpc
  cp /bin/busybox initrd/bin/busybox
  M="kroot/lib/modules/$KVER/kernel"
  for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev \
           drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci net/core/failover \
           drivers/net/net_failover drivers/net/virtio_net drivers/acpi/button drivers/input/evdev; do
    [ -f "$M/$m.ko" ] && cp "$M/$m.ko" initrd/lib/modules/
  done
  cat > initrd/init <<'EOF'
#!/bin/busybox sh
/bin/busybox mkdir -p /usr/bin /usr/sbin /sbin /tmp
/bin/busybox --install -s
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
echo "CM-MARKER: guest userspace up"
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net button evdev; do
  [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null; done
if grep -q cm.net /proc/cmdline; then
  ip link set lo up; ip link set eth0 up
  if udhcpc -i eth0 -s /usr/share/udhcpc/default.script -n -q -t 10 -T 2; then
    echo "CM-DHCP-OK: $(ip -4 -o addr show eth0) router=$(cat /tmp/router 2>/dev/null) dns=$(cat /tmp/dns 2>/dev/null)"
  else echo "CM-DHCP-FAIL"; fi
fi
if grep -q cm.stay /proc/cmdline; then
  # ACPI power button -> clean poweroff, so libvirt's graceful shutdown works
  acpid_loop() {
    dev=""
    for _ in $(seq 100); do
      for e in /sys/class/input/event*; do
        [ "$(cat "$e/device/name" 2>/dev/null)" = "Power Button" ] && { dev=/dev/${e##*/}; break; }
      done
      [ -n "$dev" ] && [ -e "$dev" ] && break; sleep 0.1
    done
    [ -n "$dev" ] || { echo "CM-MARKER: no power button"; return; }
    dd if="$dev" bs=24 count=1 >/dev/null 2>&1 && { echo "CM-MARKER: acpi shutdown"; poweroff -f; }
  }
  acpid_loop &
  echo "CM-MARKER: staying up"
  while true; do sleep 3600; done
fi
echo "CM-MARKER: powering off"; poweroff -f
EOF
  cat > initrd/usr/share/udhcpc/default.script <<'EOF'
#!/bin/sh
case "$1" in
  bound|renew) ip addr flush dev $interface; ip addr add $ip/${mask:-24} dev $interface
               echo "$router" > /tmp/router; echo "$dns" > /tmp/dns ;;
  deconfig) ip addr flush dev $interface ;;
esac
EOF
  chmod +x initrd/init initrd/usr/share/udhcpc/default.script
  (cd initrd && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > initrd.img.tmp
  mv initrd.img.tmp initrd.img
fi
echo "kernel: $VIRT_WORK/vmlinuz  initrd: $VIRT_WORK/initrd.img"
