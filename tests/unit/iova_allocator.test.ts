import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { IovaAllocator } from "../../lib/dma/iova_allocator.ts";
import { OutOfRangeError, VfioError } from "../../lib/errors.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const WIDE = [{ start: 0n, end: (1n << 39n) - 1n }];

describe("IovaAllocator", () => {
  it("skips the first 64 KiB and hands out the lowest fit first", () => {
    const a = new IovaAllocator(WIDE);
    assert.equal(a.alloc(4 * KiB), 0x10000n);
    assert.equal(a.alloc(4 * KiB), 0x11000n);
  });

  it("aligns to the size's natural alignment, capped at 2 MiB", () => {
    const a = new IovaAllocator(WIDE);
    assert.equal(a.alignmentFor(4 * KiB), 4 * KiB);
    assert.equal(a.alignmentFor(12 * KiB), 8 * KiB);
    assert.equal(a.alignmentFor(64 * KiB), 64 * KiB);
    assert.equal(a.alignmentFor(6 * MiB), 2 * MiB);
    assert.equal(a.alloc(4 * KiB), 0x10000n);
    assert.equal(a.alloc(2 * MiB), 0x200000n);
    assert.equal(a.alloc(64 * KiB), 0x20000n);
    const big = a.alloc(8 * MiB);
    assert.equal(big % BigInt(2 * MiB), 0n);
    assert.equal(big, 0x400000n);
  });

  it("honours the IOMMU's minimum page size", () => {
    const a = new IovaAllocator(WIDE, { minAlign: 64 * KiB });
    assert.throws(() => a.alloc(4 * KiB), OutOfRangeError);
    assert.equal(a.alloc(64 * KiB), 0x10000n);
  });

  it("stays inside the reported ranges (reserved holes) and maxIova", () => {
    const ranges = [{ start: 0n, end: 0xfedfffffn }, { start: 0xfef00000n, end: 0xffffffffffn }];
    const a = new IovaAllocator(ranges, { maxIova: (1n << 28n) - 1n });
    assert.equal(a.describeRanges(), "0x10000-0xfffffff");
    const b = new IovaAllocator([{ start: 0xfee00000n, end: 0xfeefffffn }, { start: 0x1000n, end: 0xffffn }]);
    assert.equal(b.alloc(4 * KiB), 0xfee00000n, "the range below 64 KiB is skipped entirely");
    assert.throws(() => new IovaAllocator([{ start: 0n, end: 0xffffn }]), OutOfRangeError);
  });

  it("fails clearly on exhaustion and on requests larger than any range", () => {
    const a = new IovaAllocator([{ start: 0x10000n, end: 0x1ffffn }]);
    for (let i = 0; i < 16; i++) a.alloc(4 * KiB);
    assert.throws(() => a.alloc(4 * KiB), (e: unknown) => {
      assert.ok(e instanceof VfioError && !(e instanceof OutOfRangeError));
      assert.match((e as Error).message, /IOVA space exhausted/);
      return true;
    });
    assert.throws(() => a.alloc(128 * KiB), /larger than every usable IOVA range/);
  });

  it("coalesces freed neighbours so a large block fits again", () => {
    const a = new IovaAllocator([{ start: 0x40000n, end: 0x7ffffn }]); // 256 KiB, 256 KiB aligned
    const blocks = Array.from({ length: 64 }, () => a.alloc(4 * KiB));
    assert.throws(() => a.alloc(4 * KiB));
    // Free in an order that exercises merge-left, merge-right and merge-both.
    for (let i = 0; i < 64; i += 2) a.free(blocks[i]);
    assert.equal(a.freeRanges.length, 32);
    for (let i = 1; i < 64; i += 2) a.free(blocks[i]);
    assert.deepEqual(a.freeRanges, [{ start: 0x40000n, end: 0x7ffffn }]);
    assert.equal(a.bytesInUse, 0n);
    assert.equal(a.alloc(256 * KiB), 0x40000n);
  });

  it("reuses a freed block for the next request that fits", () => {
    const a = new IovaAllocator(WIDE);
    const x = a.alloc(8 * KiB);
    a.alloc(8 * KiB);
    a.free(x);
    assert.equal(a.alloc(4 * KiB), x);
    assert.equal(a.alloc(4 * KiB), x + 4096n);
  });

  it("rejects bad sizes, double frees and unknown IOVAs", () => {
    const a = new IovaAllocator(WIDE);
    assert.throws(() => a.alloc(0), OutOfRangeError);
    assert.throws(() => a.alloc(100), OutOfRangeError);
    const x = a.alloc(4096);
    a.free(x);
    assert.throws(() => a.free(x), /already freed/);
    assert.throws(() => a.free(0x12345000n), OutOfRangeError);
  });

  it("allocAt reserves an exact block inside the ranges only", () => {
    const a = new IovaAllocator([{ start: 0n, end: 0xffffffn }]);
    assert.equal(a.allocAt(0x100000n, 8192), 0x100000n);
    assert.throws(() => a.allocAt(0x101000n, 4096), /overlaps/);
    assert.throws(() => a.allocAt(0x1000000n, 4096), /outside the usable ranges/);
    assert.throws(() => a.allocAt(0x1000n, 4096), /outside the usable ranges/);
    assert.throws(() => a.allocAt(0x100800n, 4096), /not aligned/);
    assert.equal(a.sizeOf(0x100000n), 8192);
    a.free(0x100000n);
    assert.equal(a.freeRanges.length, 1);
  });
});
