import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { libc } from "../../ffi/libc.ts";
import { allocDma } from "../../lib/dma/buffer.ts";
import { allocDmaPool, DmaPool } from "../../lib/dma/pool.ts";
import { ClosedError, OutOfRangeError, VfioError } from "../../lib/errors.ts";
import { IovaMapper } from "../../lib/iommu/iova_mapper.ts";
import { NoiommuMapper } from "../../lib/iommu/noiommu.ts";
import type { IoAddressSpace } from "../../lib/iommu/types.ts";
import { hugepageStatus } from "../../lib/sysfs/hugepages.ts";
import { skipBecause } from "../skip.ts";

/** Unused 2 MiB hugepages right now. */
function free2M(): number {
  const p = hugepageStatus().pools.find((pool) => pool.sizeKiB === 2048);
  return p ? p.free - p.reserved : 0;
}

function recordingMapper(): IovaMapper {
  const space: IoAddressSpace = {
    iovaRanges: [{ start: 0n, end: (1n << 39n) - 1n }],
    pageSizes: 0x40201000n,
    mapDma: () => {},
    unmapDma: () => {},
  };
  return new IovaMapper(space);
}

const root = libc.geteuid() === 0;

describe("DmaPool", () => {
  it("hands out entries 0, 1, 2 … with precomputed offsets and bus addresses", () => {
    using mapper = recordingMapper();
    using pool = allocDmaPool(mapper, { entrySize: 2048, count: 8, hugepages: "never" });
    assert.equal(pool.count, 8);
    assert.equal(pool.available, 8);
    assert.equal(pool.buffer.size, 16384);
    const a = pool.alloc()!;
    const b = pool.alloc()!;
    assert.deepEqual([a, b], [0, 1]);
    assert.equal(pool.offsetOf(b), 2048);
    assert.equal(pool.busAddress(b), pool.buffer.busAddress(0) + 2048n);
    assert.equal(pool.available, 6);
    pool.free(a);
    assert.equal(pool.alloc(), a, "LIFO: the warmest entry comes back first");
  });

  it("runs dry with null and refuses double frees and unknown indices", () => {
    using mapper = recordingMapper();
    using pool = allocDmaPool(mapper, { entrySize: 1024, count: 4, hugepages: "never" });
    const got = [pool.alloc(), pool.alloc(), pool.alloc(), pool.alloc()];
    assert.deepEqual(got, [0, 1, 2, 3]);
    assert.equal(pool.alloc(), null);
    pool.free(2);
    assert.throws(() => pool.free(2), /freed twice/);
    assert.throws(() => pool.free(4), OutOfRangeError);
    assert.throws(() => pool.free(-1), OutOfRangeError);
    assert.throws(() => pool.busAddress(9), OutOfRangeError);
  });

  it("allocates and frees in batches", () => {
    using mapper = recordingMapper();
    using pool = allocDmaPool(mapper, { entrySize: 256, count: 64, hugepages: "never" });
    const out = new Uint32Array(32);
    assert.equal(pool.allocBatch(32, out), 32);
    assert.equal(pool.available, 32);
    assert.equal(pool.allocBatch(100, out), 32, "bounded by out.length");
    assert.equal(pool.allocBatch(8, out), 0, "empty");
    for (const bad of [-3, 1.5, NaN, 2 ** 32]) {
      assert.throws(() => pool.allocBatch(bad, out), OutOfRangeError, `allocBatch(${bad})`);
    }
    assert.throws(() => pool.freeBatch(out, -1), OutOfRangeError);
    assert.throws(() => pool.freeBatch(out, out.length + 1), OutOfRangeError);
    pool.freeBatch(out, 16);
    assert.equal(pool.available, 16);
    const more = new Uint32Array(64);
    assert.equal(pool.allocBatch(64, more), 16);
    assert.deepEqual([...more.subarray(0, 16)].sort((x, y) => x - y), [...out.subarray(0, 16)].sort((x, y) => x - y));
  });

  it("checks entry geometry", () => {
    using mapper = recordingMapper();
    assert.throws(() => allocDmaPool(mapper, { entrySize: 0, count: 4 }), OutOfRangeError);
    const buf = allocDma(mapper, 8192, { hugepages: "never" });
    assert.throws(() => new DmaPool(buf, 4096, 3), /does not fit/);
    using pool = new DmaPool(buf, 3000); // IOVA-contiguous: any size fits
    assert.equal(pool.count, 2);
    assert.equal(mapper.mappingCount, 1);
  });

  it("keeps entries within a page when physical pages are scattered (root)", {
    skip: skipBecause(!root && "needs root"),
  }, () => {
    using mapper = new NoiommuMapper();
    const buf = allocDma(mapper, 32 * 4096, { hugepages: "never" });
    if (buf.contiguous) {
      buf.close();
      return; // physically contiguous by chance: nothing to refuse
    }
    assert.throws(() => new DmaPool(buf, 3000), (e: unknown) => e instanceof VfioError && /page/.test(e.message));
    using pool = new DmaPool(buf, 2048);
    for (let i = 0; i < pool.count; i++) {
      assert.equal(pool.busAddress(i), buf.busAddress(pool.offsetOf(i)));
    }
  });

  it("entry size must divide 2 MiB with hugepages", {
    skip: skipBecause(free2M() === 0 && "needs a free hugepage"),
  }, () => {
    using mapper = recordingMapper();
    assert.throws(() => allocDmaPool(mapper, { entrySize: 3000, count: 10, hugepages: "require" }), /2 MiB/);
    using pool = allocDmaPool(mapper, { entrySize: 2048, count: 1024, hugepages: "require" });
    assert.equal(pool.buffer.hugepage, true);
  });

  it("is unusable after close", () => {
    const mapper = recordingMapper();
    const pool = allocDmaPool(mapper, { entrySize: 2048, count: 2, hugepages: "never" });
    const buf = pool.buffer;
    pool.close();
    pool.close();
    assert.equal(buf.closed, true);
    assert.throws(() => pool.alloc(), ClosedError);
    assert.throws(() => pool.busAddress(0), ClosedError);
    assert.equal(mapper.mappingCount, 0);
  });
});
