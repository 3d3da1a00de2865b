/**
 * Regions through real vfio-pci in the guest: region info (flags, sizes, capability chain), edu BAR0 through the
 * mmap (ID, liveness, one 8-byte write of the DMA source register) and through pread/pwrite, bounds, alignment
 * and use after close; nvme and e1000e BARs with MSI-X; the legacy virtio-net I/O-port BAR through pread only.
 * Skipped outside the VM rig (VFIO_TS_IN_VM unset).
 *
 * edu registers (qemu docs/specs/edu.rst): 0x00 ID 0x010000ed, 0x04 liveness (reads back the inverse), 0x80 DMA
 * source address (64-bit).
 * @module
 */

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { PCI_CAP_ID_MSIX } from "../../lib/abi/pci.ts";
import {
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_NUM_REGIONS,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
} from "../../lib/abi/vfio.ts";
import { MsixCapability } from "../../lib/capabilities.ts";
import { ConfigSpace } from "../../lib/config.ts";
import { ClosedError, OutOfRangeError, UnsupportedError } from "../../lib/errors.ts";
import { Region, regionInfo } from "../../lib/region.ts";

import { guest, openInGuest, releaseDevices, skipIf } from "./guest.ts";

const { edu: EDU, nvme: NVME, e1000e: E1000E, virtioNet: VIRTIO_NET } = guest;
const open = openInGuest;
afterEach(releaseDevices); // a failed test must not leave a device open for the next

test("edu: region info of every index", { skip: skipIf(EDU, "edu") }, () => {
  using dev = open(EDU!);
  const bar0 = regionInfo(dev, VFIO_PCI_BAR0_REGION_INDEX);
  assert.equal(bar0.name, "BAR0");
  assert.equal(bar0.size, 1 << 20);
  assert.ok(bar0.readable && bar0.writable && bar0.mmappable, `BAR0 flags 0x${bar0.flags.toString(16)}`);
  assert.equal(bar0.sparseAreas, null);
  for (let i = 1; i <= 5; i++) assert.equal(regionInfo(dev, i).size, 0, `BAR${i} is unused on edu`);
  const config = regionInfo(dev, VFIO_PCI_CONFIG_REGION_INDEX);
  assert.equal(config.name, "config");
  assert.ok(config.size === 256 || config.size === 4096, `config size ${config.size}`);
  assert.equal(config.mmappable, false);
  // Offsets are distinct per index (vfio-pci: index << 40).
  assert.notEqual(config.offset, bar0.offset);
  assert.throws(() => regionInfo(dev, VFIO_PCI_NUM_REGIONS + 7)); // EINVAL from the kernel
  assert.throws(() => Region.open(dev, 1), UnsupportedError); // size 0
});

test(
  "edu BAR0 through the mmap: ID, liveness, 64-bit register, bounds, alignment, close",
  { skip: skipIf(EDU, "edu") },
  () => {
    using dev = open(EDU!);
    using cfg = ConfigSpace.open(dev);
    cfg.enableMemory();
    const bar0 = Region.open(dev, VFIO_PCI_BAR0_REGION_INDEX, { mmap: "required" });
    assert.equal(bar0.mapped, true);
    assert.equal(bar0.size, 1 << 20);
    assert.equal(bar0.read32(0x00), 0x010000ed);
    for (const v of [0x12345678, 0, 0xffffffff, 0xa5a5a5a5]) {
      bar0.write32(0x04, v);
      assert.equal(bar0.read32(0x04), ~v >>> 0, `liveness of 0x${v.toString(16)}`);
    }
    // One 8-byte store: the high half must survive (two 4-byte writes would lose it on edu).
    const value = 0x0000_0012_3456_7000n;
    bar0.write64(0x80, value);
    assert.equal(bar0.read64(0x80), value);
    bar0.write64(0x80, 0n);
    assert.equal(bar0.read64(0x80), 0n);
    assert.throws(() => bar0.read32(0x100000), (e: unknown) => {
      assert.ok(e instanceof OutOfRangeError);
      assert.match(e.message, /BAR0 read32 at 0x100000: beyond the region's 0x100000 bytes/);
      return true;
    });
    assert.throws(() => bar0.read32(0x02), /misaligned: 32-bit access must be 4-byte aligned/);
    assert.throws(() => bar0.write64(0x84, 1n), /misaligned: 64-bit access must be 8-byte aligned/);
    bar0.close();
    assert.throws(() => bar0.read32(0), ClosedError);
    assert.throws(() => bar0.write32(4, 1), ClosedError);
    assert.throws(() => bar0.read64(0x80), ClosedError);
    bar0.close(); // idempotent
  },
);

test("edu BAR0 through pread/pwrite gives the same answers", { skip: skipIf(EDU, "edu") }, () => {
  using dev = open(EDU!);
  using cfg = ConfigSpace.open(dev);
  cfg.enableMemory();
  using bar0 = Region.open(dev, VFIO_PCI_BAR0_REGION_INDEX, { mmap: "never" });
  assert.equal(bar0.mapped, false);
  assert.equal(bar0.read32(0x00), 0x010000ed);
  assert.deepEqual([...bar0.readBytes(0, 4)], [0xed, 0x00, 0x00, 0x01]);
  bar0.write32(0x04, 0x0f0f0f0f);
  assert.equal(bar0.read32(0x04), 0xf0f0f0f0);
  const value = 0x0000_0001_8000_1000n;
  bar0.write64(0x80, value);
  assert.equal(bar0.read64(0x80), value);
  using mapped = Region.open(dev, VFIO_PCI_BAR0_REGION_INDEX);
  assert.equal(mapped.read64(0x80), value, "the mmap sees what pwrite wrote");
  assert.throws(() => bar0.read32(0x100000), OutOfRangeError);
});

test("edu: regions fail with ClosedError once the device is closed", { skip: skipIf(EDU, "edu") }, () => {
  using dev = open(EDU!); // closed below on purpose; `using` closes it when an assertion fails first
  const viaPread = Region.open(dev, VFIO_PCI_BAR0_REGION_INDEX, { mmap: "never" });
  const cfg = ConfigSpace.open(dev);
  const mapped = Region.open(dev, VFIO_PCI_BAR0_REGION_INDEX);
  mapped.close();
  dev.close();
  assert.throws(() => viaPread.read32(0), ClosedError);
  assert.throws(() => viaPread.write32(4, 0), ClosedError);
  assert.throws(() => cfg.vendorId, ClosedError);
  assert.throws(() => mapped.read32(0), ClosedError);
  viaPread.close();
  cfg.close();
});

for (const [kind, address] of [["nvme", NVME], ["e1000e", E1000E]] as const) {
  test(`${kind}: BAR info, MSI-X table BAR mappable, mmap and pread agree`, { skip: skipIf(address, kind) }, () => {
    using dev = open(address!);
    using cfg = ConfigSpace.open(dev);
    cfg.enableMemory();
    const cap = cfg.findCapability(PCI_CAP_ID_MSIX);
    assert.ok(cap, "MSI-X capability");
    const msix = new MsixCapability(cfg, cap.offset);
    const tableBar = regionInfo(dev, msix.tableBir);
    assert.ok(tableBar.size >= msix.tableOffset + 16 * msix.tableSize, "the table fits in its BAR");
    assert.ok(tableBar.mmappable, `${tableBar.name} mmappable`);
    // Kernel ≥ 4.16 lets the MSI-X table BAR be mmapped whole and says so with a capability.
    assert.equal(tableBar.msixMappable, true, `${tableBar.name} caps ${tableBar.capabilityIds}`);
    assert.ok(tableBar.capabilityIds.includes(VFIO_REGION_INFO_CAP_MSIX_MAPPABLE));
    using bar0 = Region.open(dev, VFIO_PCI_BAR0_REGION_INDEX);
    using bar0p = Region.open(dev, VFIO_PCI_BAR0_REGION_INDEX, { mmap: "never" });
    assert.equal(bar0.mapped, true);
    assert.equal(bar0.size, regionInfo(dev, 0).size);
    // nvme: CAP (0x00, 64-bit), VS (0x08); e1000e: CTRL (0x00), STATUS (0x08): side-effect-free reads.
    assert.equal(bar0.read32(0x00), bar0p.read32(0x00));
    assert.equal(bar0.read32(0x08), bar0p.read32(0x08));
    if (kind === "nvme") {
      assert.equal(bar0.read64(0x00), bar0p.read64(0x00));
      assert.ok(bar0.read64(0x00) !== 0n, "nvme CAP is not zero");
      assert.ok(bar0.read32(0x08) >= 0x00010000, `nvme VS 0x${bar0.read32(0x08).toString(16)}`);
    }
  });
}

test("virtio-net legacy: I/O-port BAR0 is not mmappable; the MAC reads through pread", {
  skip: skipIf(VIRTIO_NET, "virtio-net"),
}, () => {
  using dev = open(VIRTIO_NET!);
  using cfg = ConfigSpace.open(dev);
  cfg.enableIo();
  const info = regionInfo(dev, VFIO_PCI_BAR0_REGION_INDEX);
  assert.equal(info.mmappable, false);
  assert.ok(info.readable && info.writable);
  assert.throws(() => Region.open(dev, VFIO_PCI_BAR0_REGION_INDEX, { mmap: "required" }), UnsupportedError);
  using bar0 = Region.open(dev, VFIO_PCI_BAR0_REGION_INDEX);
  assert.equal(bar0.mapped, false);
  const mac = bar0.readBytes(0x14, 6);
  const text = [...mac].map((b) => b.toString(16).padStart(2, "0")).join(":");
  assert.match(text, /^52:54:00:/, `MAC ${text}`);
  console.log(`virtio-net MAC through pread of the I/O BAR: ${text}`);
  // The same bytes one at a time (1-byte port reads).
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => bar0.read8(0x14 + i)), [...mac]);
  assert.throws(() => bar0.read32(info.size), OutOfRangeError);
});
