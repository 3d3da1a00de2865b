// The IOVA-base option (`openDevice(addr, { iovaBase })`) against the real kernel's IOVA ranges (type1's
// VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, iommufd's IOMMU_IOAS_IOVA_RANGES): mappings start at the base, above 4 GiB
// edu's DMA reaches them, a base in the interrupt window or past the address width is refused with the ranges named
// (and nothing is left open), and devices sharing one IOVA space must agree on it.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import type { Device } from "../../lib/device.ts";
import { OutOfRangeError, VfioError } from "../../lib/errors.ts";
import type { IommuChoice } from "../../lib/open.ts";
import { guest, openInGuest, releaseDevices, skipBecause, skipUnless } from "./guest.ts";

const edu = guest.edu ?? "";
const HIGH = 0x10_0000_0000n; // 64 GiB: upper 32 bits 0x10
const paths: IommuChoice[] = guest.mode === "iommufd" ? ["auto", "type1", "iommufd-compat"] : ["auto"];
afterEach(releaseDevices);

/** RAM -> edu -> RAM through one 8 KiB buffer of `dev`; returns the buffer's bus address. */
function eduRoundTrip(dev: Device): bigint {
  dev.config.enableMemory();
  dev.config.enableBusMaster();
  const bar0 = dev.bar(0);
  using buf = dev.allocDma(8192, { hugepages: "never" });
  for (let i = 0; i < 2048; i++) buf.u8[i] = (i * 31 + 7) & 0xff;
  const dma = (src: bigint, dst: bigint, toRam: boolean): void => {
    bar0.write64(0x80, src);
    bar0.write64(0x88, dst);
    bar0.write64(0x90, 2048n);
    bar0.write32(0x98, toRam ? 3 : 1);
    const t0 = performance.now();
    while (bar0.read32(0x98) & 1) if (performance.now() - t0 > 5000) throw new Error("edu DMA timed out");
  };
  dma(buf.busAddress(0), 0x40000n, false);
  dma(0x40000n, buf.busAddress(4096), true);
  for (let i = 0; i < 2048; i++) assert.equal(buf.u8[4096 + i], buf.u8[i], `byte ${i} after the round trip`);
  return buf.busAddress(0);
}

const skip = skipUnless(
  !edu ? "no edu in the guest" : guest.mode === "noiommu" && "no IOVAs in noiommu mode (bus addresses are physical)",
  "the IOVA base option",
);

describe("the IOVA base option", { skip }, () => {
  for (const iommu of paths) {
    it(`${iommu}: mappings start at the base, above 4 GiB, and edu's DMA gets there and back`, () => {
      using dev = openInGuest(edu, { iommu, iovaBase: HIGH });
      assert.equal(eduRoundTrip(dev), HIGH);
    });

    it(`${iommu}: a base outside the kernel's IOVA ranges is refused at open, naming them`, () => {
      for (const iovaBase of [0xfee00000n, 1n << 60n]) {
        assert.throws(() => openInGuest(edu, { iommu, iovaBase }), (e: unknown) => {
          assert.ok(e instanceof OutOfRangeError, String(e));
          assert.match(e.message, /outside the IOVA ranges the kernel reports \(0x0-0xfedfffff, 0xfef00000-0x/);
          return true;
        });
      }
      using dev = openInGuest(edu, { iommu }); // nothing was left open
      assert.ok(eduRoundTrip(dev) < 1n << 32n || guest.iovaBase !== undefined);
    });
  }

  const agree = "devices sharing an IOVA space must agree on the base";
  it(agree, { skip: !skip && skipBecause(!guest.nvme && "no nvme in the guest", agree) }, () => {
    using a = openInGuest(edu, { iovaBase: HIGH });
    assert.throws(() => openInGuest(guest.nvme!, { iovaBase: HIGH * 2n }), (e: unknown) => {
      assert.ok(e instanceof VfioError && !(e instanceof OutOfRangeError), String(e));
      assert.match(e.message, /was opened with IOVA base 0x1000000000, not 0x2000000000/);
      return true;
    });
    using b = openInGuest(guest.nvme!, { iovaBase: HIGH });
    assert.equal(a.iommu, b.iommu);
  });
});
