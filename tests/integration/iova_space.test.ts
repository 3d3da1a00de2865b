// Caller-owned IOVA spaces in the guest (iommu: type1 containers; iommufd: IOASes, and type1 containers through the
// legacy groups too). Devices opened into different spaces are isolated: each space hands out its own IOVAs (the same
// numbers, different memory) and edu's DMA works through its own. Devices opened into one space share it: edu DMAs
// through a buffer allocated for nvme. The default (no space) stays the process-wide shared one. A space in use
// refuses to close; a space of the wrong kind, or a no-IOMMU device, is refused with a typed error.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { UnsupportedError, VfioError } from "../../lib/errors.ts";
import { createIovaSpace, type IovaSpaceKind } from "../../lib/iova_space.ts";
import { eduRoundTrip, prepareEdu } from "./fixtures/edu_ops.ts";
import { guest, openInGuest, releaseDevices, skipUnless } from "./guest.ts";

const edu = guest.edu ?? "";
const nvme = guest.nvme ?? "";
const skip = skipUnless(
  !guest.edu || !guest.nvme
    ? "needs edu and nvme"
    : guest.mode === "noiommu" && "no IOVA spaces without an IOMMU (bus addresses are physical)",
);
const kinds: IovaSpaceKind[] = guest.mode === "iommufd" ? ["iommufd", "type1"] : ["type1"];

describe("IOVA spaces", { timeout: 300_000 }, () => {
  afterEach(releaseDevices);

  for (const kind of kinds) {
    it(`${kind}: two spaces isolate edu from nvme`, { skip }, () => {
      using a = createIovaSpace({ kind });
      using b = createIovaSpace({ kind });
      const e = openInGuest(edu, { space: a });
      const n = openInGuest(nvme, { space: b });
      assert.equal(a.devices, 1);
      assert.equal(e.iommu, kind);
      assert.notEqual(e.dmaMapper, n.dmaMapper);
      const bufA = e.allocDma(8192);
      const bufB = n.allocDma(8192);
      // separate allocators: the same first IOVA in each, for different memory
      assert.equal(bufA.busAddress(0), bufB.busAddress(0));
      assert.notEqual(bufA.vaddr, bufB.vaddr);
      bufB.fill(0x5a);
      prepareEdu(e);
      eduRoundTrip(e, bufA, 11); // edu reads and writes space A's memory at that IOVA
      assert.ok(bufB.u8.every((x) => x === 0x5a), "space B's memory at the same IOVA is untouched");
      assert.throws(() => a.close(), VfioError, "in use by edu");
      e.close();
      n.close();
      assert.equal(a.devices, 0);
    });

    it(`${kind}: one space shared by edu and nvme`, { skip }, () => {
      using s = createIovaSpace({ kind });
      const e = openInGuest(edu, { space: s });
      const n = openInGuest(nvme, { space: s });
      assert.equal(s.devices, 2);
      assert.equal(e.dmaMapper, n.dmaMapper);
      prepareEdu(e);
      const buf = n.allocDma(8192); // made for nvme, used by edu: one IOVA space
      eduRoundTrip(e, buf, 13);
      const own = s.allocDma(8192); // the space's own buffer, owned by the caller
      eduRoundTrip(e, own, 17);
      own.close();
      e.close();
      n.close();
      assert.match(JSON.stringify(s), /"devices":0/);
    });
  }

  it("the default stays one shared space, apart from explicit ones", { skip }, () => {
    using s = createIovaSpace();
    const e = openInGuest(edu);
    const n = openInGuest(nvme);
    assert.equal(e.dmaMapper, n.dmaMapper);
    assert.notEqual(e.dmaMapper, s.mapper);
    prepareEdu(e);
    eduRoundTrip(e, n.allocDma(8192), 19);
  });

  it(
    "a space of the other kind is refused",
    { skip: skip || skipUnless(guest.mode !== "iommufd" && "iommufd only") },
    () => {
      using s = createIovaSpace({ kind: "type1" });
      assert.throws(() => openInGuest(edu, { space: s, iommu: "iommufd" }), /type1 IOVA space cannot take a device/);
      assert.equal(s.devices, 0);
    },
  );

  it("a no-IOMMU device has no IOVA space to join", {
    skip: skipUnless(guest.mode !== "noiommu" && "noiommu mode only"),
  }, () => {
    using s = createIovaSpace({ kind: "type1" });
    assert.throws(() => openInGuest(edu, { space: s }), UnsupportedError);
  });
});
