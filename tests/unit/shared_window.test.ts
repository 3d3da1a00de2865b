// lib/shared_window.ts on the host: window descriptions carry per-page bus addresses when the buffer is not one run,
// windowBusAddress finds every byte's, viewSharedWindow reads and writes the owner's memory, and bad input gets an
// OutOfRangeError. Plumbing only (a mapper that hands out made-up bus addresses); the guest test
// tests/integration/nvme_workers.test.ts drives a real device with it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { allocDma } from "../../lib/dma/buffer.ts";
import { OutOfRangeError } from "../../lib/errors.ts";
import { IovaMapper } from "../../lib/iommu/iova_mapper.ts";
import type { DmaMapper } from "../../lib/iommu/types.ts";
import { openSharedWindow, shareWindow, viewSharedWindow, windowBusAddress } from "../../lib/shared_window.ts";

const PAGE = 4096;

/** Page i of every mapping at bus address 0x100000 * (8 - i): scattered, descending, as no IOMMU may give them. */
function scatteredMapper(): DmaMapper {
  return {
    kind: "noiommu",
    map: () => ({
      kind: "noiommu",
      contiguous: false,
      busAddress: (offset: number) => BigInt(0x100000 * (8 - Math.floor(offset / PAGE)) + (offset % PAGE)),
      unmap: () => {},
    }),
    close: () => {},
  };
}

/** An IOVA mapper over an address space that only records (every buffer one run from 0x10000). */
function iovaMapper(): IovaMapper {
  return new IovaMapper({
    iovaRanges: [{ start: 0n, end: (1n << 39n) - 1n }],
    pageSizes: 0x40201000n,
    mapDma: () => {},
    unmapDma: () => {},
  });
}

describe("shared windows", () => {
  it("carry every page's bus address of a scattered buffer, found by offset", () => {
    using buf = allocDma(scatteredMapper(), 4 * PAGE, { hugepages: "never" });
    const w = shareWindow(buf, PAGE + 8, 2 * PAGE); // starts inside page 1, ends inside page 3
    assert.equal(w.contiguous, false);
    assert.equal(w.pageSize, PAGE);
    assert.deepEqual(w.pageBusAddresses, [buf.busAddress(PAGE), buf.busAddress(2 * PAGE), buf.busAddress(3 * PAGE)]);
    assert.equal(w.busAddress, buf.busAddress(PAGE + 8));
    for (const at of [0, 1, PAGE - 9, PAGE - 8, PAGE - 1, 2 * PAGE - 9, 2 * PAGE - 8, 2 * PAGE - 1]) {
      assert.equal(windowBusAddress(w, at), buf.busAddress(PAGE + 8 + at), `byte ${at}`);
    }
    const whole = structuredClone(shareWindow(buf)); // as a worker receives it
    for (let at = 0; at < buf.size; at += 1000) assert.equal(windowBusAddress(whole, at), buf.busAddress(at));
    assert.equal(viewSharedWindow(whole).busAddress(3 * PAGE + 5), buf.busAddress(3 * PAGE + 5));
  });

  it("of a contiguous buffer carry no page list: busAddress + offset", () => {
    using mapper = iovaMapper();
    using buf = allocDma(mapper, 3 * PAGE, { hugepages: "never" });
    const w = shareWindow(buf, 16);
    assert.equal(w.contiguous, true);
    assert.equal(w.pageBusAddresses, null);
    assert.equal(windowBusAddress(w, 3 * PAGE - 17), buf.busAddress(3 * PAGE - 1));
  });

  it("view the owner's memory: the worker's writes are the owner's bytes", () => {
    using mapper = iovaMapper();
    using buf = allocDma(mapper, 2 * PAGE, { hugepages: "never" }).fill(0);
    const v = viewSharedWindow(shareWindow(buf, PAGE));
    assert.equal(v.size, PAGE);
    v.write32(8, 0xdeadbeef);
    assert.equal(buf.read32(PAGE + 8), 0xdeadbeef);
    buf.write32(PAGE + 12, 7);
    assert.equal(v.read32(12), 7);
    assert.equal(v.u8.length, PAGE);
    assert.equal(new Uint8Array(openSharedWindow(shareWindow(buf)))[PAGE + 12], 7);
  });

  it("refuse bad input with OutOfRangeError", () => {
    using buf = allocDma(scatteredMapper(), 2 * PAGE, { hugepages: "never" });
    const w = shareWindow(buf, 0, PAGE);
    for (const at of [-1, PAGE, 0.5, Number.NaN]) assert.throws(() => windowBusAddress(w, at), OutOfRangeError);
    assert.throws(() => windowBusAddress(w, PAGE), /outside its 4096 bytes \(pass an offset from 0 to 4095/);
    const region = { ...w, what: "BAR0", busAddress: null, contiguous: null, pageSize: null, pageBusAddresses: null };
    assert.throws(() => windowBusAddress(region, 0), /BAR0: a region's window has no bus addresses/);
    assert.throws(() => windowBusAddress({ ...w, pageBusAddresses: [] }, 0), /page list does not cover/);
    for (const bad of [null, {}, { ...w, kind: "x" }, { ...w, address: 0n }, { ...w, byteLength: 0 }]) {
      assert.throws(() => openSharedWindow(bad as never), OutOfRangeError);
      assert.throws(() => windowBusAddress(bad as never, 0), OutOfRangeError);
      assert.throws(() => viewSharedWindow(bad as never), OutOfRangeError);
    }
    const v = viewSharedWindow(w);
    assert.throws(() => v.read32(PAGE), OutOfRangeError);
    assert.throws(() => v.read32(2), OutOfRangeError);
    assert.throws(() => v.write32(-4, 0), OutOfRangeError);
    assert.throws(() => v.write32(0, 2 ** 32), OutOfRangeError);
    assert.throws(() => shareWindow(buf, 4), OutOfRangeError);
  });
});
