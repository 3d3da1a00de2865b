#!/bin/busybox sh
# /init of the vfio-ts test guest (packed into the initramfs by setup.sh).
# Per run the host appends a second cpio archive with /job/env (shell variables, see rig.ts) and /job/run.sh (the
# command, run chrooted into the host's / shared over 9p). Protocol on the console (ttyS0), one marker per line:
#   @@VFIO_TS:INIT@@            /init started (the host retries a boot that never gets here)
#   @@VFIO_TS:READY@@           modules loaded, devices bound, shares mounted; the command starts
#   @@VFIO_TS:SETUP_FAILED msg@@  the guest could not be prepared
#   @@VFIO_TS:KERNEL_ISSUES=n@@ dmesg has n WARNING/BUG/Oops lines (printed before the marker)
#   @@VFIO_TS:EXIT=rc@@         the command's exit status; the guest powers off right after
# The command's stdout goes to ttyS1 and its stderr to ttyS2 (through pipes, raw mode), stdin is /dev/null.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
M=@@VFIO_TS
echo "$M:INIT@@ uptime=$(cut -d' ' -f1 /proc/uptime)"

finish() {
  sync
  N=$(dmesg | grep -cE 'WARNING:|BUG:|Oops|general protection fault|Kernel panic')
  if [ "$N" -gt 0 ]; then
    echo "$M:DMESG@@"
    dmesg | grep -E -A12 'WARNING:|BUG:|Oops|general protection fault' | head -120
    echo "$M:KERNEL_ISSUES=$N@@"
  fi
  echo "$M:EXIT=$1@@"
  poweroff -f
}
fail() {
  echo "vfio-ts init: $*"
  echo "$M:DMESG@@"
  dmesg | tail -25
  echo "$M:SETUP_FAILED $*@@"
  finish 125
}

[ -f /job/env ] || fail "no /job/env in the initramfs (start the guest through tests/vm/rig.ts)"
# MODE BIND KERNEL_DEVS HOSTROOT REPO SHELL_MODE
. /job/env

case $MODE in
  noiommu) modprobe vfio enable_unsafe_noiommu_mode=1 || fail "modprobe vfio enable_unsafe_noiommu_mode=1" ;;
  iommu | iommufd)
    [ -d /sys/class/iommu ] && [ -n "$(ls /sys/class/iommu)" ] || fail "no IOMMU in the guest (intel_iommu=on?)"
    modprobe iommufd || fail "modprobe iommufd"
    modprobe vfio || fail "modprobe vfio"
    modprobe vfio_iommu_type1 || fail "modprobe vfio_iommu_type1"
    # the kernel's sample mediated device (pulls in mdev): tests create and remove mtty instances through sysfs
    modprobe mtty || fail "modprobe mtty"
    ;;
  *) fail "unknown mode '$MODE'" ;;
esac
modprobe vfio-pci || fail "modprobe vfio-pci"

# Bind the test devices to vfio-pci first, so that no kernel driver loaded below can take them
# (virtio_pci is built in and already owns the virtio-net device).
for b in $BIND; do
  d=/sys/bus/pci/devices/$b
  [ -d "$d" ] || fail "no PCI device $b"
  echo vfio-pci >"$d/driver_override"
  [ -e "$d/driver" ] && echo "$b" >"$d/driver/unbind"
  echo "$b" >/sys/bus/pci/drivers_probe
  drv=$(basename "$(readlink "$d/driver")" 2>/dev/null)
  [ "$drv" = vfio-pci ] || fail "$b did not bind to vfio-pci (driver: ${drv:-none})"
done

# The iommu mode stands for a kernel with the legacy group/container path only: the rebuilt vfio.ko needs iommufd
# loaded, so hide its nodes instead, and automatic choices land on type1 there (iommufd mode keeps them).
if [ "$MODE" = iommu ]; then
  rm -f /dev/iommu
  rm -rf /dev/vfio/devices
fi

modprobe 9pnet_virtio || fail "modprobe 9pnet_virtio"
modprobe 9p || fail "modprobe 9p"

# Devices that stay on their kernel driver
for b in $KERNEL_DEVS; do
  d=/sys/bus/pci/devices/$b
  [ -d "$d" ] || fail "no PCI device $b"
  id="$(cat "$d/vendor"):$(cat "$d/device")"
  case $id in
    0x8086:0x10d3) mod=e1000e ;;
    0x8086:0x10c9) mod=igb ;;
    0x1b36:0x0010) mod=nvme ;;
    0x1af4:0x1000) mod=virtio_net ;;
    *) fail "no kernel driver known for $b ($id)" ;;
  esac
  modprobe $mod || fail "modprobe $mod"
  drv=$(basename "$(readlink "$d/driver")" 2>/dev/null)
  [ $mod = virtio_net ] && drv=$(basename "$(readlink "$d"/virtio*/driver)" 2>/dev/null)
  [ "$drv" = $mod ] || [ "$drv" = "${mod}_pci" ] || fail "$b is not on its kernel driver $mod (driver: ${drv:-none})"
done

# The host's / read-only (multidevs=remap on the host side keeps inode numbers unique; Deno needs that), a tmpfs
# on /tmp and one on /run, then the repository read-write at the same absolute path.
H=/mnt/host
O=trans=virtio,version=9p2000.L,msize=512000,cache=loose
mount -t 9p -o "$O,ro" hostroot $H || fail "9p mount of the host's /"
mount -t tmpfs -o mode=1777 tmp $H/tmp || fail "tmpfs on /tmp"
mount -t tmpfs -o mode=0755 run $H/run || fail "tmpfs on /run" # vfio-ts keeps driver records in /run/vfio-ts
mount -t proc proc $H/proc
mount -t sysfs sys $H/sys
mount -o bind /dev $H/dev
mkdir -p /dev/shm /dev/pts
mount -t tmpfs -o mode=1777 shm $H/dev/shm
mount -t devpts devpts $H/dev/pts
mkdir -p "$H$REPO" 2>/dev/null # only needed (and possible) when the repository lies below /tmp
mount -t 9p -o "$O" repo "$H$REPO" || fail "9p mount of the repository at $REPO"
cp /job/run.sh $H/tmp/.vfio-ts-run.sh

echo "$M:READY@@ uptime=$(cut -d' ' -f1 /proc/uptime)"
if [ "$SHELL_MODE" = 1 ]; then
  setsid cttyhack chroot $H /usr/bin/env -i /bin/sh /tmp/.vfio-ts-run.sh
  rc=$?
else
  # through pipes, so that the command sees no terminal (as on CI); the cats drain before the exit marker
  stty -F /dev/ttyS1 raw -echo
  stty -F /dev/ttyS2 raw -echo
  mkfifo /tmp/out /tmp/err
  cat /tmp/out >/dev/ttyS1 &
  P1=$!
  cat /tmp/err >/dev/ttyS2 &
  P2=$!
  chroot $H /usr/bin/env -i /bin/sh /tmp/.vfio-ts-run.sh </dev/null >/tmp/out 2>/tmp/err
  rc=$?
  wait $P1 $P2
fi
umount "$H$REPO" 2>/dev/null
finish $rc
