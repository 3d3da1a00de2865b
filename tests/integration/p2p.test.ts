// Peer-to-peer DMA in the guest (needs `--devices default,nvme-cmb`: an nvme with a controller memory buffer at
// BAR2): edu DMAs a random buffer into the NVMe's CMB through mapPeerRegion, and the bytes are read back through
// the NVMe's BAR. type1 maps the BAR's PFN map into the container; without an IOMMU the bus address is the BAR's
// own; iommufd on Linux 6.12 cannot map MMIO (it pins pages) and says so with an UnsupportedError.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import process from "node:process";
import { afterEach, describe, it } from "node:test";
import { UnsupportedError } from "../../lib/errors.ts";
import { mapPeerRegion } from "../../lib/p2p.ts";
import { dma, EDU_DMA_BYTES, prepareEdu } from "./fixtures/edu_ops.ts";
import { guest, openInGuest, releaseDevices, skipUnless } from "./guest.ts";

const cmbNvme = (process.env.VFIO_TS_NVME_CMB ?? "").split(",").filter(Boolean)[0];
const skip = skipUnless(!guest.edu ? "no edu" : !cmbNvme && "run with --devices default,nvme-cmb (an nvme with a CMB)");
const EDU_BUFFER = 0x40000n;

describe("peer-to-peer DMA", { timeout: 120_000 }, () => {
  afterEach(releaseDevices);

  it("edu writes a random buffer into NVMe's controller memory buffer", { skip }, () => {
    const edu = openInGuest(guest.edu!);
    const nvme = openInGuest(cmbNvme!);
    prepareEdu(edu);
    nvme.config.enableMemory();
    const cmb = nvme.bar(2); // the CMB starts at offset 0 of BAR2
    assert.ok(cmb.size >= 1024 * 1024, `CMB BAR of ${cmb.size} bytes`);
    if (guest.mode === "iommufd") {
      assert.throws(() => mapPeerRegion(edu.dmaMapper, cmb, nvme.name), (e: Error) => {
        assert.ok(e instanceof UnsupportedError, String(e));
        assert.match(e.message, /iommufd cannot map .* BAR2 for peer-to-peer DMA/);
        return true;
      });
      return;
    }
    using peer = mapPeerRegion(edu.dmaMapper, cmb, nvme.name);
    const data = new Uint8Array(randomBytes(EDU_DMA_BYTES));
    const buf = edu.allocDma(4096);
    buf.u8.set(data);
    cmb.writeBytes(0, new Uint8Array(EDU_DMA_BYTES)); // zero the CMB first
    dma(edu, buf.busAddress(0), EDU_BUFFER, false); // RAM -> edu
    dma(edu, EDU_BUFFER, peer.busAddress(0), true); // edu -> NVMe's CMB, through the IOMMU (or physically)
    assert.deepEqual(cmb.readBytes(0, EDU_DMA_BYTES), data);
  });
});
