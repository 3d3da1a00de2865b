#!/bin/bash
# The whole test suite, from a fresh clone: installs what it needs, checks formatting, lint and types, runs the
# host unit tests on Deno and Bun, then the integration suite against the real vfio-pci driver inside the QEMU
# guest in every IOMMU mode (noiommu, iommu, iommufd) on Deno and Bun. Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
T0=$(date +%s)
bash tools/setup.sh || { echo "test: tools/setup.sh failed (its messages above); nothing was tested" >&2; exit 1; }
DENO=node_modules/deno/deno
export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
pass=0 fail=0
step() { # name, command...
  local name=$1; shift
  local t=$(date +%s)
  echo "=== $name"
  if "$@"; then pass=$((pass + 1)); echo "--- $name: ok ($(($(date +%s) - t)) s)"
  else fail=$((fail + 1)); echo "--- $name: FAILED ($(($(date +%s) - t)) s)"; fi
}
step "format (dprint check)" node_modules/.bin/dprint check
step "format (deno fmt --check agrees)" $DENO fmt --check
step "lint (deno lint)" $DENO lint
step "types (deno check, JSDoc examples included)" $DENO check --doc mod.ts sysfs.ts iommu.ts abi.ts cli.ts lib/ ffi/ tests/ examples/ bench/ cli/ tools/
step "docs (every public export documented: deno doc --lint)" $DENO doc --lint mod.ts sysfs.ts iommu.ts abi.ts cli.ts
step "docs (JSDoc examples import @vfio-ts/vfio, not relative paths)" $DENO run -A tools/jsdoc-imports.ts
step "package (deno publish --dry-run: no warning; it and npm pack --dry-run ship only the library)" \
  $DENO run -A tools/check-package.ts
step "unit tests (deno + bun)" bash tools/test-unit.sh
# two combinations at a time: each guest is one TCG vCPU, and the Deno combinations alone take about 6 minutes
step "guest integration tests (3 modes x 2 runtimes)" $DENO run -A tests/vm/test_vm.ts --jobs 2
# pktgen -> fwd -> receiver across two QEMU hubs needs four NICs: its own rig, one boot per mode x runtime; with every
# DMA address past 4 GiB, so a driver that drops a descriptor's upper 32 bits loses frames
step "NIC forwarder chain (4 NICs on 2 hubs, DMA above 4 GiB, 3 modes x 2 runtimes)" $DENO run -A tests/vm/test_vm.ts \
  --filter fwd --jobs 2 --high-dma --devices virtio-net@0,e1000e@0,virtio-net@1,e1000e@1
# the example NIC drivers against the guest kernel's own drivers on the same hubs: igb (2 queue pairs) with a kernel
# e1000e, e1000e with a kernel igb; random frames both ways through AF_PACKET
step "NIC peer checks against kernel drivers (3 modes x 2 runtimes)" $DENO run -A tests/vm/test_vm.ts \
  --filter nic_peer --jobs 2 --devices igb@0,e1000e@0:kernel,e1000e@1,igb@1:kernel
# modern virtio-net (virtio 1.x, IOVAs through the IOMMU, physical addresses in no-IOMMU mode) against a vfio e1000e
# and the kernel's e1000e on one hub; then fwd.ts between igb and modern virtio-net with kernel NICs at both ends
step "modern virtio-net: pktgen, waitRx, kernel peer (3 modes x 2 runtimes)" $DENO run -A tests/vm/test_vm.ts \
  --filter virtio_modern --jobs 2 --devices e1000e@0,virtio-net-modern@0,e1000e@0:kernel
step "fwd.ts igb <-> modern virtio-net between kernel NICs (3 modes x 2 runtimes)" $DENO run -A tests/vm/test_vm.ts \
  --filter virtio_modern --jobs 2 --devices igb@0,e1000e@0:kernel,virtio-net-modern@1,e1000e@1:kernel
# a secondary bus reset: two edus behind one bridge (every device of the bus owned, or the reset refused)
step "hot reset behind a bridge (3 modes x 2 runtimes)" $DENO run -A tests/vm/test_vm.ts --filter hot_reset --jobs 2 \
  --devices edu,edu,edu+
# edu DMAs into nvme's controller memory buffer mapped into the IOVA space (type1; iommufd on 6.12 refuses MMIO)
step "peer-to-peer DMA into an NVMe CMB (3 modes x 2 runtimes)" $DENO run -A tests/vm/test_vm.ts --filter p2p --jobs 2 \
  --devices default,nvme-cmb
# in-use detection with an nvme and a virtio-net left on their kernel drivers (swap, a raw opener in another mount
# namespace, an address, the default route)
step "in-use detection on kernel-driver devices (noiommu, iommu x 2 runtimes)" $DENO run -A tests/vm/test_vm.ts \
  --filter in_use --mode noiommu,iommu --devices edu,nvme:kernel,virtio-net@0:kernel
# every DMA address past 4 GiB: IOVAs from 0x10_0000_0000 (iommu, iommufd), guest RAM mostly above 4 GiB (noiommu)
step "DMA above 4 GiB (3 modes x 2 runtimes)" $DENO run -A tests/vm/test_vm.ts --high-dma --jobs 2 \
  --filter dma,example,config,iova_base
# a 16 GiB BAR (ivshmem) mapped and written at its last page; it also makes the firmware put nvme's 64-bit BAR0
# above 4 GiB, where config decoding must read both halves
step "16 GiB BAR and 64-bit BARs above 4 GiB (3 modes x 2 runtimes)" $DENO run -A tests/vm/test_vm.ts --jobs 2 \
  --filter large_bar,config --devices default,ivshmem
# an emulated IOMMU without interrupt remapping: VFIO refuses devices, and the library must say why
step "no interrupt remapping (iommu, iommufd x 2 runtimes)" $DENO run -A tests/vm/test_vm.ts --filter intremap \
  --mode iommu,iommufd --no-intremap --devices edu
# SR-IOV: an igb on vfio-pci (VF tokens) and one on its kernel driver (VFs bound before any probe), two slots apart
# (an igb's VFs sit 16 slots above it); an SR-IOV nvme on the kernel's driver whose VF runs examples/nvme.ts
step "SR-IOV: igb VFs and VF tokens, an NVMe VF (iommu, iommufd x 2 runtimes)" $DENO run -A tests/vm/test_vm.ts \
  --filter sriov --mode iommu,iommufd --jobs 2 --devices igb@0,edu,igb@1:kernel,nvme-sriov:kernel
# an igb VF driven through the PF-VF mailbox while its PF stays on the kernel's igb; the kernel's e1000e is its peer
step "igb VF driver against the kernel's igb PF (iommu, iommufd x 2 runtimes)" $DENO run -A tests/vm/test_vm.ts \
  --filter igbvf --mode iommu,iommufd --jobs 2 --devices igb@0:kernel,e1000e@0:kernel,e1000e@0
# the benchmarks run end to end (fewer repetitions; one guest boot for P3); no figure is judged here
step "benchmarks run (deno task bench --quick)" $DENO run -A bench/all.ts --quick
step "host sees the guest's NVMe writes in the image" $DENO test -A tests/vm/nvme_image.test.ts
echo "suite: $pass passed, $fail failed ($(($(date +%s) - T0)) s)"
[ "$fail" -eq 0 ]
