import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { libc } from "../../ffi/libc.ts";
import { allocDma } from "../../lib/dma/buffer.ts";
import { ClosedError, OutOfRangeError, VfioError } from "../../lib/errors.ts";
import { IovaMapper } from "../../lib/iommu/iova_mapper.ts";
import { NoIommuMapper } from "../../lib/iommu/noiommu.ts";
import type { IoAddressSpace } from "../../lib/iommu/types.ts";
import { hugepageStatus } from "../../lib/sysfs/hugepages.ts";
import { skipBecause } from "../skip.ts";

/** Unused 2 MiB hugepages right now. */
function free2M(): number {
  const p = hugepageStatus().pools.find((pool) => pool.sizeKiB === 2048);
  return p ? p.free - p.reserved : 0;
}

/** An address space that only records mappings (plumbing only: no kernel is involved). */
function recordingSpace(): IoAddressSpace & { live: Map<bigint, number> } {
  const live = new Map<bigint, number>();
  return {
    live,
    iovaRanges: [{ start: 0n, end: (1n << 39n) - 1n }],
    pageSizes: 0x40201000n,
    mapDma: (_vaddr, iova, size) => void live.set(iova, size),
    unmapDma: (iova) => void live.delete(iova),
  };
}

const root = libc.geteuid() === 0;

describe("DmaBuffer", () => {
  it("exposes views, bus addresses and Atomics-backed reads over the whole buffer", () => {
    const space = recordingSpace();
    using mapper = new IovaMapper(space);
    using buf = allocDma(mapper, 6000, { hugepages: "never" });
    assert.equal(buf.sizeBytes, 8192);
    assert.equal(buf.kind, "type1");
    assert.equal(buf.hugepage, false);
    assert.equal(buf.contiguous, true);
    assert.equal(buf.iova, 0x10000n);
    assert.equal(buf.busAddress(0x1234), 0x11234n);
    assert.equal(space.live.get(0x10000n), 8192);
    assert.equal(buf.u8.length, 8192);
    assert.equal(buf.u16.length, 4096);
    assert.equal(buf.u32.length, 2048);
    assert.equal(buf.u64.length, 1024);
    buf.u64[1] = 0x1122334455667788n;
    assert.equal(buf.read32(8), 0x55667788);
    assert.equal(buf.read32(12), 0x11223344);
    assert.equal(buf.read64(8), 0x1122334455667788n);
    buf.write32(16, 0xdeadbeef);
    buf.write64(24, 42n);
    assert.equal(buf.u32[4], 0xdeadbeef);
    assert.equal(buf.u64[3], 42n);
    buf.fill(0xa5, 4096);
    assert.equal(buf.u8[4095], 0);
    assert.equal(buf.u8[8191], 0xa5);
    assert.throws(() => buf.read32(2), OutOfRangeError);
    assert.throws(() => buf.read64(8192), OutOfRangeError);
    assert.throws(() => buf.busAddress(8192), OutOfRangeError);
    assert.equal(libc.addressOf(buf.u8), buf.vaddr);
  });

  it("is unusable after close: accessors throw ClosedError, old views are empty, the IOVA is unmapped", () => {
    const space = recordingSpace();
    using mapper = new IovaMapper(space);
    const buf = allocDma(mapper, 4096, { hugepages: "never" });
    const u32 = buf.u32;
    const u8 = new Uint8Array(buf.arrayBuffer, 100, 10);
    u32[0] = 7;
    buf.close();
    buf.close();
    assert.equal(space.live.size, 0);
    assert.equal(u32.length, 0);
    assert.equal(u32[0], undefined);
    assert.equal(u8.length, 0);
    u32[0] = 1; // a no-op on a detached view, not a crash
    for (const f of [() => buf.u8, () => buf.u32, () => buf.u64, () => buf.vaddr, () => buf.iova]) {
      assert.throws(f, ClosedError);
    }
    assert.throws(() => buf.read32(0), ClosedError);
    assert.throws(() => buf.busAddress(0), ClosedError);
    assert.throws(() => buf.fill(0), ClosedError);
    assert.equal(mapper.map(0x7f0000000000n, 4096).busAddress(0), 0x10000n, "IOVA given back");
  });

  it("frees the memory when mapping fails", () => {
    const space = recordingSpace();
    const mapper = new IovaMapper(space);
    mapper.close();
    assert.throws(() => allocDma(mapper, 4096, { hugepages: "never" }), ClosedError);
  });

  it("uses physical addresses without an IOMMU (root)", { skip: skipBecause(!root && "needs root") }, () => {
    using mapper = new NoIommuMapper();
    using buf = allocDma(mapper, 3 * 4096, { hugepages: "never" });
    assert.equal(buf.kind, "noiommu");
    assert.notEqual(buf.iova, 0n);
    assert.equal(buf.busAddress(4096 + 5) & 0xfffn, 5n);
    if (!buf.contiguous) {
      assert.throws(() => allocDma(mapper, 64 * 4096, { hugepages: "never", contiguous: true }), VfioError);
    }
  });

  it("a 2 MiB hugepage is one physically contiguous run (root, hugepages free)", {
    skip: skipBecause((!root || free2M() === 0) && "needs root and a free hugepage"),
  }, () => {
    using mapper = new NoIommuMapper();
    using buf = allocDma(mapper, 2 << 20, { hugepages: "require", contiguous: true });
    assert.equal(buf.hugepage, true);
    assert.equal(buf.contiguous, true);
    assert.equal(buf.iova % BigInt(2 << 20), 0n);
    assert.equal(buf.busAddress((2 << 20) - 1), buf.iova + BigInt((2 << 20) - 1));
  });
});
