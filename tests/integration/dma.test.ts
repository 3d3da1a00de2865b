// DMA through real vfio-pci in the guest, in whatever mode the rig booted: the edu device copies RAM -> its internal
// buffer -> RAM using bus addresses from allocDma / DmaPool (physical addresses in no-IOMMU mode, IOVAs through the
// type1 container or an iommufd IOAS), on 4 KiB pages and on a 2 MiB hugepage. With an IOMMU, a DMA aimed at an
// IOVA that was unmapped must leave memory untouched. Skipped outside the VM (VFIO_TS_IN_VM unset).
//
// edu (qemu docs/specs/edu.rst): 0x80 DMA source, 0x88 destination, 0x90 count, 0x98 command (bit 0 start/busy,
// bit 1 direction: set = device -> RAM, bit 2 raise an interrupt when done); the device buffer is at 0x40000 (4 KiB).
// QEMU before 8.2.1 rejects a transfer that ends exactly at the end of that buffer (off-by-one, fixed in edu.c in
// January 2024) with a hw_error that kills the VM, so transfers here stay at 2 KiB.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { afterEach, test } from "node:test";
import { O_CLOEXEC, O_RDWR } from "../../ffi/constants.ts";
import { libc } from "../../ffi/libc.ts";
import { PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY } from "../../lib/abi/pci.ts";
import { VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX } from "../../lib/abi/vfio.ts";
import { allocDma, type DmaBuffer } from "../../lib/dma/buffer.ts";
import { DmaMemory } from "../../lib/dma/memory.ts";
import { allocDmaPool } from "../../lib/dma/pool.ts";
import { ClosedError } from "../../lib/errors.ts";
import { attachIoas, bindIommufd, Iommufd } from "../../lib/iommu/iommufd.ts";
import { IovaMapper } from "../../lib/iommu/iova_mapper.ts";
import type { DmaMapper } from "../../lib/iommu/types.ts";
import { Region } from "../../lib/region.ts";
import { reserveHugepages } from "../../lib/sysfs/hugepages.ts";
import type { DeviceFd } from "../../lib/types.ts";
import { FOUR_GIB, guest, openInGuest, releaseDevices, skipBecause, skipIf, skipUnless } from "./guest.ts";

const { mode } = guest;
const edu = guest.edu ?? "";
const skipEdu = skipIf(guest.edu, "edu");
const skipIommu = skipEdu ||
  skipBecause(mode === "noiommu" && "no IOMMU in noiommu mode", "edu DMA to an unmapped IOVA leaves memory untouched");
const skipHigh = skipEdu || skipUnless(!guest.highDma && "the rig was not asked for --high-dma", "high DMA addresses");
afterEach(releaseDevices); // a failed test must not leave a device open for the next

const DMA_SRC = 0x80, DMA_DST = 0x88, DMA_COUNT = 0x90, DMA_CMD = 0x98;
const CMD_START = 1, CMD_TO_RAM = 2;
const EDU_BUFFER = 0x40000n;
const MiB = 1 << 20;

/** edu opened the way the mode wants, with bus mastering on and BAR0 mapped. */
interface Edu extends Disposable {
  dev: DeviceFd;
  bar0: Region;
  mapper: DmaMapper;
}

function openEdu(): Edu {
  let dev: DeviceFd;
  let mapper: DmaMapper;
  let closeDev: () => void;
  if (mode === "iommufd") {
    // The cdev bound to an iommufd IOAS: the same IovaMapper over a different IoAddressSpace.
    const cdev = readdirSync(`/sys/bus/pci/devices/${edu}/vfio-dev`)[0];
    const fd = libc.open(`/dev/vfio/devices/${cdev}`, O_RDWR | O_CLOEXEC);
    const iommufd = Iommufd.open();
    let iovaMapper: IovaMapper;
    try {
      bindIommufd(fd, iommufd, edu);
      const ioas = iommufd.allocIoas();
      attachIoas(fd, ioas, edu);
      iovaMapper = new IovaMapper(ioas, { kind: "iommufd", iovaBase: guest.iovaBase });
    } catch (e) {
      libc.close(fd);
      iommufd.close();
      throw e;
    }
    let open = true;
    dev = {
      get fd(): number {
        if (!open) throw new ClosedError(`device ${edu}`);
        return fd;
      },
      name: edu,
    };
    mapper = iovaMapper;
    closeDev = (): void => {
      if (!open) return;
      open = false;
      iovaMapper.close();
      libc.close(fd);
      iommufd.close();
    };
  } else {
    const device = openInGuest(edu);
    dev = device;
    mapper = device.dmaMapper;
    closeDev = (): void => device.close();
  }
  let bar0: Region;
  try {
    using config = Region.open(dev, VFIO_PCI_CONFIG_REGION_INDEX);
    config.write16(PCI_COMMAND, config.read16(PCI_COMMAND) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    bar0 = Region.open(dev, VFIO_PCI_BAR0_REGION_INDEX);
  } catch (e) {
    closeDev();
    throw e;
  }
  return {
    dev,
    bar0,
    mapper,
    [Symbol.dispose](): void {
      bar0.close();
      closeDev();
    },
  };
}

/** One edu DMA of `count` bytes; returns when the device clears the busy bit. */
function eduDma(bar0: Region, src: bigint, dst: bigint, count: number, toRam: boolean): void {
  bar0.write64(DMA_SRC, src);
  bar0.write64(DMA_DST, dst);
  bar0.write64(DMA_COUNT, BigInt(count));
  bar0.write32(DMA_CMD, CMD_START | (toRam ? CMD_TO_RAM : 0));
  const deadline = performance.now() + 5000;
  while ((bar0.read32(DMA_CMD) & CMD_START) !== 0) {
    if (performance.now() > deadline) throw new Error("edu DMA did not complete within 5 s");
  }
}

/** Copies `count` bytes at `srcOffset` of `buf` into the device and back to `dstOffset`. */
function roundTrip(bar0: Region, buf: DmaBuffer, srcOffset: number, dstOffset: number, count: number): void {
  eduDma(bar0, buf.busAddress(srcOffset), EDU_BUFFER, count, false);
  eduDma(bar0, EDU_BUFFER, buf.busAddress(dstOffset), count, true);
}

function pattern(buf: DmaBuffer, offset: number, count: number, seed: number): void {
  const u8 = buf.u8;
  for (let i = 0; i < count; i++) u8[offset + i] = (i * 7 + seed) & 0xff;
}

function assertCopied(buf: DmaBuffer, from: number, to: number, count: number): void {
  const u8 = buf.u8;
  for (let i = 0; i < count; i++) {
    if (u8[to + i] !== u8[from + i]) {
      assert.fail(
        `byte ${i}: 0x${u8[to + i].toString(16)} at +0x${(to + i).toString(16)}, ` +
          `expected 0x${u8[from + i].toString(16)} (mode ${mode}, ${libc.runtime})`,
      );
    }
  }
}

test(`edu DMA round trip through a 4 KiB-page buffer (${mode})`, { skip: skipEdu }, () => {
  using e = openEdu();
  assert.equal(e.mapper.kind, mode === "noiommu" ? "noiommu" : mode === "iommufd" ? "iommufd" : "type1");
  using one = allocDma(e.mapper, 4096, { hugepages: "never" });
  assert.equal(one.hugepage, false);
  pattern(one, 0, 2048, 1);
  roundTrip(e.bar0, one, 0, 2048, 2048);
  assertCopied(one, 0, 2048, 2048);
  assert.equal(one.read32(2048), one.read32(0));

  // Four pages: in no-IOMMU mode each page has its own physical address, looked up from the table.
  using four = allocDma(e.mapper, 4 * 4096, { hugepages: "never" });
  four.fill(0);
  pattern(four, 0, 2048, 3);
  roundTrip(e.bar0, four, 0, 3 * 4096 + 1024, 2048);
  assertCopied(four, 0, 3 * 4096 + 1024, 2048);
  assert.ok(four.u8.subarray(2048, 3 * 4096 + 1024).every((b) => b === 0), "bytes in between untouched");
  if (mode !== "noiommu") assert.equal(four.contiguous, true);
});

test(`edu DMA round trip through a 2 MiB hugepage buffer (${mode})`, { skip: skipEdu }, () => {
  reserveHugepages(8);
  using e = openEdu();
  using buf = allocDma(e.mapper, 2 * MiB, { hugepages: "require", contiguous: true });
  assert.equal(buf.hugepage, true);
  assert.equal(buf.contiguous, true);
  if (mode !== "noiommu") assert.equal(buf.busAddress(0) % BigInt(2 * MiB), 0n, "IOVA aligned for a 2 MiB IOMMU page");
  // Source and destination both straddle a 4 KiB boundary: only right if the 2 MiB page is one contiguous run.
  const src = 0x1c00, dst = 2 * MiB - 0x1400;
  pattern(buf, src, 2048, 5);
  roundTrip(e.bar0, buf, src, dst, 2048);
  assertCopied(buf, src, dst, 2048);
});

test(`edu DMA into one pool entry leaves its neighbours alone (${mode})`, { skip: skipEdu }, () => {
  using e = openEdu();
  using pool = allocDmaPool(e.mapper, { entrySize: 2048, count: 64, hugepages: "prefer" });
  const u8 = pool.buffer.u8;
  u8.fill(0x11);
  const src = pool.alloc()!; // entry 0
  const skipped = new Uint32Array(8);
  assert.equal(pool.allocBatch(8, skipped), 8);
  const target = pool.alloc()!; // entry 9
  assert.equal(pool.available, 64 - 10);
  pattern(pool.buffer, pool.offsetOf(src), 2048, 9);
  eduDma(e.bar0, pool.busAddress(src), EDU_BUFFER, 2048, false);
  eduDma(e.bar0, EDU_BUFFER, pool.busAddress(target), 2048, true);
  assertCopied(pool.buffer, pool.offsetOf(src), pool.offsetOf(target), 2048);
  const before = pool.offsetOf(target) - 1, after = pool.offsetOf(target) + 2048;
  assert.equal(u8[before], 0x11);
  assert.equal(u8[after], 0x11);
});

test(`edu DMA to an unmapped IOVA leaves memory untouched (${mode})`, { skip: skipIommu }, () => {
  using e = openEdu();
  using source = allocDma(e.mapper, 4096, { hugepages: "never" });
  source.fill(0xc3);
  eduDma(e.bar0, source.busAddress(0), EDU_BUFFER, 2048, false);

  // Map, remember the IOVA, unmap: the memory stays ours, the IOMMU no longer lets the device reach it.
  using victim = DmaMemory.alloc(4096, { hugepages: "never" });
  const mapping = e.mapper.map(victim.vaddr, victim.size);
  const iova = mapping.busAddress(0);
  const bytes = new Uint8Array(libc.arrayBuffer(victim.vaddr, victim.size));
  try {
    bytes.fill(0x5a);
    // While mapped, the DMA lands.
    eduDma(e.bar0, EDU_BUFFER, iova, 64, true);
    assert.equal(bytes[0], 0xc3, "DMA to the mapped IOVA arrived");
    bytes.fill(0x5a);
    mapping.unmap();
    eduDma(e.bar0, EDU_BUFFER, iova, 2048, true);
    assert.ok(bytes.every((b) => b === 0x5a), "the IOMMU blocked the DMA to the unmapped IOVA");
  } finally {
    bytes.buffer.transfer(0);
  }
});

test(`a closed buffer is unmapped and refuses use (${mode})`, { skip: skipEdu }, () => {
  using e = openEdu();
  const before = (e.mapper as { mappingCount?: number }).mappingCount;
  const buf = allocDma(e.mapper, 8192, { hugepages: "never" });
  const view = buf.u32;
  buf.close();
  assert.equal((e.mapper as { mappingCount?: number }).mappingCount, before);
  assert.equal(view.length, 0);
  assert.throws(() => buf.busAddress(0), ClosedError);
  assert.throws(() => buf.read32(0), ClosedError);
});

test(
  `--high-dma: every bus address is at or above 4 GiB, and edu's DMA reaches it (${mode})`,
  { skip: skipHigh },
  () => {
    reserveHugepages(8);
    using e = openEdu();
    using page = allocDma(e.mapper, 4096, { hugepages: "never" });
    using huge = allocDma(e.mapper, 2 * MiB, { hugepages: "require", contiguous: true });
    using pool = allocDmaPool(e.mapper, { entrySize: 2048, count: 64, hugepages: "prefer" });
    const floor = mode === "noiommu" ? FOUR_GIB : guest.iovaBase ?? FOUR_GIB;
    const addresses = [page.busAddress(0), huge.busAddress(0), pool.busAddress(0), pool.busAddress(63)];
    for (const a of addresses) {
      assert.ok(a >= floor, `bus address 0x${a.toString(16)} is below 0x${floor.toString(16)} (${mode})`);
    }
    pattern(page, 0, 2048, 9);
    page.fill(0, 2048, 4096);
    roundTrip(e.bar0, page, 0, 2048, 2048);
    assertCopied(page, 0, 2048, 2048);
  },
);
