import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { libc } from "../../ffi/libc.ts";
import { allocDma } from "../../lib/dma/buffer.ts";
import { ClosedError, OutOfRangeError, SizeLimitError, VfioError } from "../../lib/errors.ts";
import { IovaMapper } from "../../lib/iommu/iova_mapper.ts";
import { NoiommuMapper } from "../../lib/iommu/noiommu.ts";
import type { IoAddressSpace } from "../../lib/iommu/types.ts";
import { hugepageStatus } from "../../lib/sysfs/hugepages.ts";
import { maxViewBytes, setMaxViewBytesForTesting } from "../../lib/views.ts";
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
    assert.equal(buf.size, 8192);
    assert.equal(buf.kind, "type1");
    assert.equal(buf.hugepage, false);
    assert.equal(buf.contiguous, true);
    assert.equal(buf.busAddress(0), 0x10000n);
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
    for (const f of [() => buf.u8, () => buf.u32, () => buf.u64, () => buf.vaddr, () => buf.busAddress(0)]) {
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
    using mapper = new NoiommuMapper();
    using buf = allocDma(mapper, 3 * 4096, { hugepages: "never" });
    assert.equal(buf.kind, "noiommu");
    assert.notEqual(buf.busAddress(0), 0n);
    assert.equal(buf.busAddress(4096 + 5) & 0xfffn, 5n);
    if (!buf.contiguous) {
      assert.throws(() => allocDma(mapper, 64 * 4096, { hugepages: "never", contiguous: true }), VfioError);
    }
  });

  it("a 2 MiB hugepage is one physically contiguous run (root, hugepages free)", {
    skip: skipBecause((!root || free2M() === 0) && "needs root and a free hugepage"),
  }, () => {
    using mapper = new NoiommuMapper();
    using buf = allocDma(mapper, 2 << 20, { hugepages: "require", contiguous: true });
    assert.equal(buf.hugepage, true);
    assert.equal(buf.contiguous, true);
    assert.equal(buf.busAddress(0) % BigInt(2 << 20), 0n);
    assert.equal(buf.busAddress((2 << 20) - 1), buf.busAddress(0) + BigInt((2 << 20) - 1));
  });

  it("views of parts, and by-offset access, cover a buffer longer than one view (limit lowered)", () => {
    const old = setMaxViewBytesForTesting(8192);
    try {
      const space = recordingSpace();
      using mapper = new IovaMapper(space);
      const buf = allocDma(mapper, 5 * 4096, { hugepages: "never" });
      for (const f of [() => buf.u8, () => buf.u16, () => buf.u32, () => buf.u64, () => buf.arrayBuffer]) {
        assert.throws(f, SizeLimitError);
      }
      buf.write32(5 * 4096 - 4, 0xcafef00d);
      buf.write64(8192, 0x1122334455667788n);
      assert.equal(buf.read32(5 * 4096 - 4), 0xcafef00d);
      assert.equal(buf.read64(8192), 0x1122334455667788n);
      assert.equal(buf.read32(8188), 0);
      const tail = buf.view(4 * 4096, 4096);
      assert.equal(tail.u32[1023], 0xcafef00d);
      const across = buf.view(8192 - 8, 16); // straddles two pieces: its own buffer
      assert.equal(across.u64[1], 0x1122334455667788n);
      across.u8[0] = 0x5a;
      assert.equal(buf.read32(8184) & 0xff, 0x5a);
      buf.fill(0xa5, 8190, 8194);
      assert.equal(buf.read32(8188), 0xa5a50000);
      assert.equal(buf.read32(8192) & 0xffff, 0xa5a5);
      assert.throws(() => buf.view(4, 8), OutOfRangeError);
      assert.throws(() => buf.view(0, 8192 + 8), SizeLimitError);
      assert.throws(() => buf.view(4 * 4096, 4097), OutOfRangeError);
      assert.throws(() => buf.fill(0, -1), OutOfRangeError);
      buf.close();
      assert.equal(tail.u32.length, 0, "views are detached on close");
      assert.equal(across.u8.length, 0);
      assert.throws(() => buf.view(0, 8), ClosedError);
    } finally {
      setMaxViewBytesForTesting(old);
    }
  });

  it("write32/write64 refuse values that are not integers of their width", () => {
    using mapper = new IovaMapper(recordingSpace());
    using buf = allocDma(mapper, 4096, { hugepages: "never" });
    for (const bad of [NaN, 1.5, 2 ** 32, -(2 ** 31) - 1]) assert.throws(() => buf.write32(0, bad), OutOfRangeError);
    assert.throws(() => buf.write64(0, 1n << 64n), OutOfRangeError);
    assert.throws(() => buf.write64(0, 1 as unknown as bigint), OutOfRangeError);
    assert.throws(() => buf.read32(1.5), OutOfRangeError);
    buf.write32(0, -1);
    assert.equal(buf.read32(0), 0xffffffff);
  });

  const availableBytes = (): number => {
    const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync("/proc/meminfo", "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  };
  const bigSkip = !root
    ? "needs root (4 GiB of locked memory)"
    : availableBytes() < 12 * 2 ** 30
    ? "needs 12 GiB of available memory (allocates 4 GiB + 4 KiB for a moment)"
    : false;
  if (bigSkip) console.log(`dma_buffer: 4 GiB + 4 KiB test skipped: ${bigSkip}`);

  it("a 4 GiB + 4 KiB buffer works on both runtimes and leaves no mapping", { skip: bigSkip, timeout: 120_000 }, () => {
    const size = 2 ** 32 + 4096;
    const mapped = (): number =>
      readFileSync("/proc/self/maps", "utf8").split("\n").filter((l) => {
        const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(l);
        return m !== null && Number.parseInt(m[2], 16) - Number.parseInt(m[1], 16) >= size;
      }).length;
    const before = mapped();
    const space = recordingSpace();
    using mapper = new IovaMapper(space);
    const buf = allocDma(mapper, size, { hugepages: "never" });
    assert.equal(mapped(), before + 1);
    assert.equal(buf.size, size);
    if (size > maxViewBytes()) assert.throws(() => buf.u8, SizeLimitError);
    buf.write32(size - 4, 0xcafef00d);
    assert.equal(buf.read32(size - 4), 0xcafef00d);
    assert.equal(buf.view(size - 4096, 4096).u32[1023], 0xcafef00d);
    buf.close();
    assert.equal(space.live.size, 0, "unmapped from the IOMMU");
    assert.equal(mapped(), before, "the memory is unmapped");
  });
});
