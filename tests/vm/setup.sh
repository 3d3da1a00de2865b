#!/usr/bin/env bash
# Set-up of the real-kernel test rig (idempotent, cached).
#
#   bash tests/vm/setup.sh            full set-up: host packages, Debian 6.12 guest kernel (PVH vmlinux), five VFIO/iommufd
#                                     modules and the mtty sample mdev rebuilt out of tree, initramfs. Last stdout line:
#                                     the kernel cache directory.
#   bash tests/vm/setup.sh --headers  only the 6.12 uapi headers (linux/vfio.h, linux/iommufd.h, linux/pci_regs.h).
#                                     Last stdout line: the include directory (use it as -I DIR).
#   --force                           rebuild even if the cache looks complete.
#   --quiet                           no progress lines when nothing has to be done.
#
# Env: VFIO_TS_VM_CACHE (cache root, default tests/vm/.cache), VFIO_TS_VM_KV (pin a kernel ABI name such as
# 6.12.117+deb12-amd64 instead of the newest one behind linux-image-6.12-amd64).
# Progress goes to stderr. Nothing is installed into the host kernel; the kernel packages are only downloaded and unpacked.
set -eEuo pipefail
# no silent exits: any command that stops the script says which one, and where
# (in the script's own shell only: a command substitution's failures are its caller's to judge)
trap 'rc=$?; if [[ $BASHPID == "$$" ]]; then
  echo "setup.sh: error: line $LINENO: \"$BASH_COMMAND\" exited $rc" >&2
  exit $rc
fi' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${VFIO_TS_VM_CACHE:-$HERE/.cache}
# Bump when the way the kernel directory is built changes (the initramfs has its own content hash).
BUILD_REV=2
# Stock modules the guest needs (their dependencies are resolved with modprobe --show-depends). Built in (=y) in Debian's
# 6.12: virtio, virtio_pci (+legacy), devtmpfs, tmpfs. Modules (=m): 9p stack, NIC/NVMe drivers, irqbypass, mdev (it
# does not embed struct vfio_device, so the stock one fits the rebuilt vfio; mtty, which does, is rebuilt below).
STOCK_MODULES=(irqbypass 9p 9pnet_virtio e1000e igb virtio_net nvme mdev)
HOST_PACKAGES=(busybox-static cpio kmod gcc libc6-dev xz-utils zstd bc python3 make binutils)
# QEMU comes from bookworm-backports (bookworm's 7.2 has no igb and no SR-IOV igbvf). The binary, its data files and
# SeaBIOS must all come from there together: 7.2's firmware under 10.0 stalls the boot ~30 s, and mixed module files
# make `-device help` abort. A newer 10.0.x build is taken (with a warning) when the archive has moved past the pin.
QEMU_PIN=1:10.0.2+ds-2+deb13u1~bpo12+1
SEABIOS_PIN=1.16.3-2~bpo12+1
QEMU_SERIES=1:10.0.
BACKPORTS_LIST=/etc/apt/sources.list.d/vfio-ts-bookworm-backports.sources

HEADERS_ONLY=0
FORCE=0
QUIET=0
for arg in "$@"; do
  case $arg in
    --headers) HEADERS_ONLY=1 ;;
    --force) FORCE=1 ;;
    --quiet) QUIET=1 ;;
    -h | --help)
      sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "setup.sh: unknown argument: $arg" >&2
      exit 2
      ;;
  esac
done

T_START=$(date +%s%N)
info() { [ $QUIET = 1 ] || log "$@"; }
log() { # (no bc: it is one of the packages this script installs)
  local ds=$((($(date +%s%N) - T_START) / 100000000))
  printf '[vm-setup %3d.%ds] %s\n' $((ds / 10)) $((ds % 10)) "$*" >&2
}
die() {
  echo "setup.sh: error: $*" >&2
  exit 1
}
export DEBIAN_FRONTEND=noninteractive
[ "$(id -u)" = 0 ] || die "must run as root (apt-get install/download)"

# --- apt package lists: refresh only when missing, stale (> 1 day) or without the 6.12 meta package ---
# (one apt-cache call: each costs ~0.3 s)
META=""
lists_ok() {
  [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -1)" ] &&
    META=$(apt-cache show linux-image-6.12-amd64 2>/dev/null) && [ -n "$META" ]
}
if ! lists_ok; then
  log "apt-get update (package lists missing or stale)"
  if ! apt-get update -qq >&2; then
    # stale but usable lists (e.g. offline with a warm cache): go on with them
    [ -n "$META" ] || die "apt-get update failed"
    log "apt-get update failed; using the old package lists"
  fi
  META=$(apt-cache show linux-image-6.12-amd64 2>/dev/null) || true
fi

# --- host packages (full set-up only) ---
if [ $HEADERS_ONLY = 0 ]; then
  bash "$HERE/../../tools/apt-install.sh" --as vm-setup "${HOST_PACKAGES[@]}" >&2 ||
    die "installing the rig's host packages failed (apt's messages above)"
fi

# --- QEMU from bookworm-backports, pinned (full set-up only) ---
installed_version() { # (dpkg-query exits 1 for a package it has never seen: not installed, no version)
  { dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null || true; } | awk '$1 == "installed" {print $2}'
}
candidate_in_backports() { # newest version of $1 that apt knows from bookworm-backports
  apt-cache madison "$1" 2>/dev/null | awk -F' *[|] *' '$3 ~ /bookworm-backports/ {print $2; exit}'
}
qemu_from_backports() {
  local q s d
  q=$(installed_version qemu-system-x86)
  d=$(installed_version qemu-system-data)
  s=$(installed_version seabios)
  if [[ $q == "$QEMU_PIN" && $d == "$QEMU_PIN" && $s == "$SEABIOS_PIN" ]]; then return 0; fi
  if [[ $q == "$QEMU_SERIES"* && $q == *bpo12* && $d == "$q" && $s == *bpo12* ]]; then return 0; fi
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding bookworm-backports to apt's sources ($BACKPORTS_LIST)"
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm-backports' 'Components: main' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' >"$BACKPORTS_LIST"
  fi
  if [[ -z $(candidate_in_backports qemu-system-x86) ]]; then
    log "apt-get update (bookworm-backports not read yet)"
    apt-get update -qq >&2 || die "apt-get update failed (needed for QEMU from bookworm-backports)"
  fi
  local want_q=$QEMU_PIN want_s=$SEABIOS_PIN
  if ! apt-cache madison qemu-system-x86 | grep -qF " $QEMU_PIN "; then
    want_q=$(candidate_in_backports qemu-system-x86)
    [[ $want_q == "$QEMU_SERIES"* ]] || die "bookworm-backports has no QEMU $QEMU_SERIES* (it offers '${want_q:-nothing}')"
    log "warning: QEMU $QEMU_PIN is gone from the archive; installing $want_q"
  fi
  if ! apt-cache madison seabios | grep -qF " $SEABIOS_PIN "; then
    want_s=$(candidate_in_backports seabios)
    [[ -n $want_s ]] || die "bookworm-backports has no seabios"
  fi
  log "installing QEMU $want_q and SeaBIOS $want_s from bookworm-backports"
  apt-get install -y -qq --no-install-recommends -t bookworm-backports "qemu-system-x86=$want_q" \
    "qemu-system-data=$want_q" "seabios=$want_s" >&2 || die "installing QEMU from bookworm-backports failed"
}
if [ $HEADERS_ONLY = 0 ]; then
  qemu_from_backports
fi

# --- resolve the guest kernel: newest 6.12 in bookworm-security, every package at that one version ---
# the meta package's first stanza (newest version): "Depends: linux-image-6.12.117+deb12-amd64 (= 6.12.117-1~deb12u1)"
if [ -n "${VFIO_TS_VM_KV:-}" ]; then
  KV=$VFIO_TS_VM_KV
  VER=$(apt-cache show "linux-image-$KV" 2>/dev/null | awk '/^Version:/{print $2; exit}')
else
  read -r KV VER < <(echo "$META" | awk '/^Depends: linux-image-6\.12/{print substr($2, 13), substr($4, 1, length($4) - 1); exit}') || true
fi
[ -n "${KV:-}" ] || die "cannot resolve the kernel behind linux-image-6.12-amd64 (is bookworm-security in sources.list?)"
[ -n "${VER:-}" ] || die "apt knows no linux-image-$KV"
KB=${KV%-amd64} # 6.12.117+deb12
KDIR=$CACHE/kernel-${VER//\~/_}
info "guest kernel $KV ($VER)"

# download PKG... into DIR at version VER (skips files already there)
download() {
  local dir=$1
  shift
  local want=()
  for p in "$@"; do
    compgen -G "$dir/${p}_*.deb" >/dev/null || want+=("$p=$VER")
  done
  [ ${#want[@]} -gt 0 ] || return 0
  mkdir -p "$dir"
  log "apt-get download ${want[*]}"
  # the _apt sandbox user cannot write into root-only dirs: download as root (apt warns, harmlessly)
  (cd "$dir" && apt-get download -q "${want[@]}" 2>&1 | grep -vE 'unsandboxed|^Get:|^Fetched' >&2) || true
  for p in "$@"; do
    compgen -G "$dir/${p}_*.deb" >/dev/null || die "download of $p=$VER failed (archive moved on? run apt-get update)"
  done
}

# --- uapi headers (cheap; also done by the full set-up) ---
UAPI=$CACHE/uapi
headers() {
  if [ $FORCE = 0 ] && [ "$(cat "$UAPI/VERSION" 2>/dev/null)" = "$VER" ] &&
    [ -f "$UAPI/linux/vfio.h" ] && [ -f "$UAPI/linux/iommufd.h" ] && [ -f "$UAPI/linux/pci_regs.h" ] &&
    [ -f "$UAPI/linux/ioport.h" ] && [ -f "$UAPI/linux/capability.h" ]; then
    return 0
  fi
  local deb tmp
  deb=$KDIR/debs
  compgen -G "$deb/linux-headers-$KB-common_*.deb" >/dev/null || {
    deb=$CACHE/debs-headers
    download "$deb" "linux-headers-$KB-common"
  }
  tmp=$(mktemp -d "$CACHE/uapi.XXXXXX")
  dpkg-deb --fsys-tarfile "$deb"/linux-headers-"$KB"-common_*.deb |
    tar -x -C "$tmp" --wildcards '*/include/uapi/linux/vfio.h' '*/include/uapi/linux/iommufd.h' \
      '*/include/uapi/linux/pci_regs.h' '*/include/uapi/linux/capability.h' '*/include/linux/ioport.h'
  mkdir -p "$tmp/out/linux"
  for f in vfio.h iommufd.h pci_regs.h capability.h; do
    sed 's/__user //g' "$tmp"/usr/src/linux-headers-"$KB"-common/include/uapi/linux/$f >"$tmp/out/linux/$f"
  done
  # kernel-internal: the ABI test takes only its #define lines (IORESOURCE_* flags of sysfs "resource")
  cp "$tmp"/usr/src/linux-headers-"$KB"-common/include/linux/ioport.h "$tmp/out/linux/ioport.h"
  echo "$VER" >"$tmp/out/VERSION"
  rm -rf "$UAPI"
  mv "$tmp/out" "$UAPI"
  rm -rf "$tmp" "$CACHE/debs-headers"
  log "uapi headers $VER -> $UAPI"
}
mkdir -p "$CACHE"
# one set-up at a time per cache (concurrent `deno task vm` runs)
exec 9>"$CACHE/.lock"
flock 9
if [ $HEADERS_ONLY = 1 ]; then
  headers
  echo "$UAPI"
  exit 0
fi

# --- kernel directory: vmlinux + modules (expensive part; keyed by VER and BUILD_REV) ---
STAMP="$VER rev$BUILD_REV"
if [ $FORCE = 0 ] && [ "$(cat "$KDIR/kernel.stamp" 2>/dev/null)" = "$STAMP" ]; then
  headers
else
  log "building the guest kernel directory $KDIR (about a minute)"
  rm -rf "$KDIR"
  mkdir -p "$KDIR"
  W=$KDIR/work
  mkdir -p "$W/img" "$W/hdr" "$W/src"
  download "$KDIR/debs" "linux-image-$KV" "linux-headers-$KV" "linux-headers-$KB-common" "linux-kbuild-$KB" \
    linux-source-6.12
  headers

  # (background) the 150 MB source tarball, only what the modules need: xz is single-threaded and takes ~15 s
  (
    dpkg-deb --fsys-tarfile "$KDIR"/debs/linux-source-6.12_*.deb |
      tar -xO --wildcards './usr/src/linux-source-*.tar.xz' |
      tar -xJ -C "$W/src" --wildcards '*/drivers/vfio/*' '*/drivers/iommu/iommufd/*' '*/drivers/iommu/iommu-priv.h' \
        '*/lib/interval_tree.c' '*/samples/vfio-mdev/mtty.c'
  ) &
  SRC_PID=$!
  log "unpacking image and headers"
  dpkg-deb -x "$KDIR"/debs/linux-image-"$KV"_*.deb "$W/img"
  for d in "linux-headers-$KV" "linux-headers-$KB-common" "linux-kbuild-$KB"; do
    dpkg-deb -x "$KDIR"/debs/"${d}"_*.deb "$W/hdr"
  done

  # uncompressed vmlinux for PVH direct boot: the bzImage payload is zstd; cut it exactly (payload_length - 4-byte
  # size trailer) at the setup header's payload_offset, else zstd refuses the stream.
  log "extracting the PVH vmlinux"
  python3 - "$W/img/boot/vmlinuz-$KV" "$W/vmlinux.zst" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
assert d[0x202:0x206] == b"HdrS", "not a bzImage"
po, pl = struct.unpack_from("<II", d, 0x248)
off = ((d[0x1F1] or 4) + 1) * 512 + po
payload = d[off:off + pl - 4]
assert payload[:4] == b"\x28\xb5\x2f\xfd", "payload is not zstd"
open(sys.argv[2], "wb").write(payload)
PY
  zstd -q -d -f "$W/vmlinux.zst" -o "$KDIR/vmlinux"
  rm -f "$W/vmlinux.zst"
  cp "$W/img/boot/config-$KV" "$KDIR/config"

  # (background) depmod of the stock tree (~5 s), to resolve the stock modules' dependencies
  depmod -b "$W/img" "$KV" &
  DEPMOD_PID=$!
  wait $SRC_PID || die "extracting linux-source failed"

  # --- out-of-tree build of iommufd, vfio, vfio_iommu_type1, vfio-pci-core, vfio-pci ---
  log "building iommufd/vfio/mtty modules (about 25 s)"
  H=$W/hdr/usr/src/linux-headers-$KV
  S=$(echo "$W"/src/linux-source-6.12*)
  # the headers' Makefile includes the -common tree by absolute path
  sed -i "s#^include /usr/src/#include $W/hdr/usr/src/#" "$H/Makefile"
  M=$W/mod
  mkdir -p "$M/iommu/iommufd" "$M/vfio/pci"
  cp "$S/drivers/iommu/iommu-priv.h" "$M/iommu/"
  cp "$S"/drivers/iommu/iommufd/{device.c,fault.c,hw_pagetable.c,io_pagetable.c,ioas.c,main.c,pages.c,vfio_compat.c,*.h} \
    "$M/iommu/iommufd/"
  # CONFIG_INTERVAL_TREE_SPAN_ITER is off in Debian's kernel: compile the span iterator from lib/interval_tree.c into
  # iommufd.ko, without its EXPORTs (the plain interval_tree_* functions are already exported by vmlinux).
  {
    echo '#include <linux/interval_tree.h>'
    echo '#include <linux/compiler.h>'
    sed -n '/^#ifdef CONFIG_INTERVAL_TREE_SPAN_ITER/,/^#endif/p' "$S/lib/interval_tree.c" | sed '1d;$d' |
      grep -v '^EXPORT_SYMBOL'
  } >"$M/iommu/iommufd/span_iter.c"
  cat >"$M/iommu/iommufd/Kbuild" <<'EOF'
obj-m += iommufd.o
iommufd-y := device.o fault.o hw_pagetable.o io_pagetable.o ioas.o main.o pages.o vfio_compat.o span_iter.o
EOF
  cp "$S"/drivers/vfio/{vfio_main.c,device_cdev.c,group.c,iommufd.c,container.c,virqfd.c,vfio.h,vfio_iommu_type1.c} \
    "$M/vfio/"
  cat >"$M/vfio/Kbuild" <<'EOF'
obj-m += vfio.o vfio_iommu_type1.o pci/
vfio-y := vfio_main.o device_cdev.o group.o iommufd.o container.o virqfd.o
EOF
  # struct vfio_device changes layout with IOMMUFD/DEVICE_CDEV: every user must be rebuilt with the same flags
  cp "$S"/drivers/vfio/pci/{vfio_pci_core.c,vfio_pci_intrs.c,vfio_pci_rdwr.c,vfio_pci_config.c,vfio_pci.c,vfio_pci_igd.c,vfio_pci_priv.h} \
    "$M/vfio/pci/"
  cat >"$M/vfio/pci/Kbuild" <<'EOF'
obj-m += vfio-pci-core.o vfio-pci.o
vfio-pci-core-y := vfio_pci_core.o vfio_pci_intrs.o vfio_pci_rdwr.o vfio_pci_config.o
vfio-pci-y := vfio_pci.o vfio_pci_igd.o
EOF
  # the kernel's sample mediated device (CONFIG_SAMPLES is off in Debian): a virtual 16550 UART behind an emulated
  # IOMMU; it embeds struct vfio_device too, so it takes the same flags
  mkdir -p "$M/samples"
  cp "$S/samples/vfio-mdev/mtty.c" "$M/samples/"
  echo 'obj-m += mtty.o' >"$M/samples/Kbuild"
  cat >"$M/Kbuild" <<'EOF'
# Kconfig symbols that are off in Debian's .config, forced for these objects only.
# IS_ENABLED(CONFIG_IOMMUFD) is true with CONFIG_IOMMUFD_MODULE (tristate "m").
subdir-ccflags-y += -DCONFIG_IOMMUFD_MODULE=1 -DCONFIG_VFIO_DEVICE_CDEV=1 -DCONFIG_VFIO_NOIOMMU=1 \
                    -DCONFIG_INTERVAL_TREE_SPAN_ITER=1
obj-m += iommu/iommufd/ vfio/ samples/
EOF
  # CONFIG_DEBUG_INFO_BTF_MODULES= : the headers ship a vmlinux for BTF and Kbuild would run pahole (dwarves)
  if ! make -s -C "$H" M="$M" -j"$(nproc)" CONFIG_DEBUG_INFO_BTF_MODULES= modules >"$W/build.log" 2>&1; then
    cat "$W/build.log" >&2
    die "module build failed"
  fi
  wait $DEPMOD_PID || die "depmod of the stock modules failed"

  # --- module tree for the initramfs: rebuilt modules + stock ones (decompressed; signatures kept) ---
  log "collecting modules"
  R=$KDIR/modroot
  D=$R/lib/modules/$KV/kernel
  mkdir -p "$D/drivers/iommu/iommufd" "$D/drivers/vfio/pci" "$D/samples/vfio-mdev"
  cp "$M/iommu/iommufd/iommufd.ko" "$D/drivers/iommu/iommufd/"
  cp "$M/vfio/vfio.ko" "$M/vfio/vfio_iommu_type1.ko" "$D/drivers/vfio/"
  cp "$M/vfio/pci/vfio-pci-core.ko" "$M/vfio/pci/vfio-pci.ko" "$D/drivers/vfio/pci/"
  cp "$M/samples/mtty.ko" "$D/samples/vfio-mdev/"
  strip --strip-debug "$D"/drivers/iommu/iommufd/*.ko "$D"/drivers/vfio/*.ko "$D"/drivers/vfio/pci/*.ko \
    "$D"/samples/vfio-mdev/*.ko
  SM=$W/img/lib/modules/$KV
  for m in "${STOCK_MODULES[@]}"; do
    modprobe -d "$W/img" -S "$KV" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
  done | sort -u | while read -r ko; do
    rel=${ko#"$SM/"}
    case $rel in */drivers/vfio/mdev/*) ;; */drivers/vfio/* | */drivers/iommu/iommufd/*) continue ;; esac # ours replace the stock ones
    mkdir -p "$R/lib/modules/$KV/$(dirname "$rel")"
    case $ko in
      *.xz) xz -dc "$ko" >"$R/lib/modules/$KV/${rel%.xz}" ;;
      *.zst) zstd -q -dc "$ko" >"$R/lib/modules/$KV/${rel%.zst}" ;;
      *) cp "$ko" "$R/lib/modules/$KV/$rel" ;;
    esac
  done
  cp "$SM/modules.order" "$SM/modules.builtin" "$SM/modules.builtin.modinfo" "$R/lib/modules/$KV/"
  depmod -b "$R" "$KV"
  echo "$KV" >"$KDIR/kernel.release"
  rm -rf "$W" "$KDIR/debs"
  echo "$STAMP" >"$KDIR/kernel.stamp"
  log "kernel directory ready"
fi

# --- initramfs: busybox + /init + module tree; rebuilt when init.sh, this script or busybox change ---
IHASH=$( (cat "$HERE/init.sh" "$0" /bin/busybox "$KDIR/kernel.stamp") | sha256sum | cut -c1-16)
if [ $FORCE = 1 ] || [ "$(cat "$KDIR/initramfs.stamp" 2>/dev/null)" != "$IHASH" ] || [ ! -f "$KDIR/initramfs.cpio" ]; then
  log "building initramfs"
  R=$(mktemp -d "$KDIR/root.XXXXXX")
  cp -a "$KDIR/modroot/." "$R/"
  mkdir -p "$R/bin" "$R/proc" "$R/sys" "$R/dev" "$R/tmp" "$R/mnt/host"
  cp /bin/busybox "$R/bin/busybox"
  cp "$HERE/init.sh" "$R/init"
  chmod 755 "$R/init"
  (cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$KDIR/initramfs.cpio.tmp"
  mv "$KDIR/initramfs.cpio.tmp" "$KDIR/initramfs.cpio"
  rm -rf "$R"
  echo "$IHASH" >"$KDIR/initramfs.stamp"
fi
info "ready: $KDIR ($(du -sh "$KDIR/initramfs.cpio" | cut -f1) initramfs)"
echo "$KDIR"
