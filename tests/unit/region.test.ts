/**
 * Host unit tests of `Region`'s plumbing: bounds and alignment checks, access widths, the mmap fast path, the
 * sparse-area split with pread/pwrite in the holes, the pread-only path, and use after close.
 *
 * The "device" is a memfd: it supports mmap, pread and pwrite exactly like a VFIO device fd does for a region, so
 * the code paths are the real ones. The region info is given, not asked of a kernel (that is the guest's job:
 * tests/integration/region.test.ts).
 *
 * Run: `node_modules/deno/deno test -A tests/unit/region.test.ts` or `node_modules/bun/bin/bun.exe test
 * tests/unit/region.test.ts`.
 * @module
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import { MFD_CLOEXEC } from "../../ffi/constants.ts";
import { libc } from "../../ffi/libc.ts";
import {
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
} from "../../lib/abi/vfio.ts";
import { ClosedError, OutOfRangeError, UnsupportedError } from "../../lib/errors.ts";
import { Region, type RegionInfo, regionName, type SparseMmapArea } from "../../lib/region.ts";
import type { DeviceFd } from "../../lib/types.ts";

const SIZE = 0x10000;
const FILE_OFFSET = 0x4000; // the region starts this far into the "device fd", like VFIO's index << 40

/** A memfd standing in for a device fd; `fd` throws ClosedError once closed, as the real DeviceFd does. */
class MemfdDevice implements DeviceFd {
  #fd: number;
  readonly name = "memfd:0000:00:00.0";
  constructor() {
    this.#fd = libc.memfdCreate("vfio-ts-region-test", MFD_CLOEXEC);
    libc.ftruncate(this.#fd, FILE_OFFSET + SIZE);
  }
  get fd(): number {
    if (this.#fd < 0) throw new ClosedError(`device ${this.name}`);
    return this.#fd;
  }
  /** Reads the backing file directly (not through the Region) to check what a write did. */
  peek(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    libc.pread(this.fd, out, FILE_OFFSET + offset);
    return out;
  }
  poke(offset: number, bytes: Uint8Array): void {
    libc.pwrite(this.fd, bytes, FILE_OFFSET + offset);
  }
  close(): void {
    if (this.#fd >= 0) libc.close(this.#fd);
    this.#fd = -1;
  }
}

function info(opts: { mmap: boolean; sparse?: SparseMmapArea[]; size?: number; writable?: boolean }): RegionInfo {
  const writable = opts.writable ?? true;
  return {
    index: 0,
    name: regionName(0),
    size: opts.size ?? SIZE,
    offset: FILE_OFFSET,
    flags: VFIO_REGION_INFO_FLAG_READ | (writable ? VFIO_REGION_INFO_FLAG_WRITE : 0) |
      (opts.mmap ? VFIO_REGION_INFO_FLAG_MMAP : 0),
    readable: true,
    writable,
    mmappable: opts.mmap,
    sparseAreas: opts.sparse ?? null,
    type: null,
    msixMappable: false,
    capabilityIds: [],
  };
}

function exercise(region: Region, dev: MemfdDevice, base: number): void {
  region.write8(base + 0, 0x11);
  region.write8(base + 1, 0x22);
  region.write16(base + 2, 0x4433);
  region.write32(base + 4, 0x88776655);
  region.write64(base + 8, 0x100f0e0d0c0b0a09n);
  assert.deepEqual([...dev.peek(base, 16)], [
    0x11,
    0x22,
    0x33,
    0x44,
    0x55,
    0x66,
    0x77,
    0x88,
    0x09,
    0x0a,
    0x0b,
    0x0c,
    0x0d,
    0x0e,
    0x0f,
    0x10,
  ]);
  assert.equal(region.read8(base + 1), 0x22);
  assert.equal(region.read16(base + 2), 0x4433);
  assert.equal(region.read32(base + 4), 0x88776655);
  assert.equal(region.read64(base + 8), 0x100f0e0d0c0b0a09n);
  // Values are taken modulo the width, like a register write.
  region.write32(base + 4, -1);
  assert.equal(region.read32(base + 4), 0xffffffff);
  region.write16(base + 2, 0x12345);
  assert.equal(region.read16(base + 2), 0x2345);
  // Writes behind the region's back are seen (the mapping is shared, pread reads the file).
  dev.poke(base + 4, new Uint8Array([1, 2, 3, 4]));
  assert.equal(region.read32(base + 4), 0x04030201);
  // Bulk access.
  region.writeBytes(base + 16, new Uint8Array([9, 8, 7, 6, 5]));
  assert.deepEqual([...region.readBytes(base + 16, 5)], [9, 8, 7, 6, 5]);
  assert.deepEqual([...dev.peek(base + 16, 5)], [9, 8, 7, 6, 5]);
}

function checkErrors(region: Region): void {
  assert.throws(() => region.read32(SIZE), (e: unknown) => {
    assert.ok(e instanceof OutOfRangeError);
    assert.match(e.message, /BAR0 read32 at 0x10000: beyond the region's 0x10000 bytes/);
    return true;
  });
  assert.throws(() => region.read64(SIZE - 4), /beyond the region's 0x10000 bytes/);
  assert.throws(() => region.write8(SIZE, 0), OutOfRangeError);
  assert.throws(() => region.read32(2), (e: unknown) => {
    assert.ok(e instanceof OutOfRangeError);
    assert.match(e.message, /misaligned: 32-bit access must be 4-byte aligned/);
    return true;
  });
  assert.throws(() => region.read16(1), /16-bit access must be 2-byte aligned/);
  assert.throws(() => region.write64(4, 0n), /64-bit access must be 8-byte aligned/);
  assert.throws(() => region.read32(-4), /non-negative integer/);
  assert.throws(() => region.read32(4.5), /non-negative integer/);
  assert.throws(() => region.read32(2 ** 32 + 4), /beyond the region/);
  assert.throws(() => region.read32(NaN), OutOfRangeError);
  assert.throws(() => region.readBytes(SIZE - 2, 4), /beyond the region/);
  assert.throws(() => region.writeBytes(SIZE, new Uint8Array(1)), /beyond the region/);
}

function checkClosed(region: Region): void {
  region.close();
  region.close(); // idempotent
  assert.equal(region.closed, true);
  assert.equal(region.mapped, false);
  for (
    const f of [
      () => region.read8(0),
      () => region.read16(0),
      () => region.read32(0),
      () => region.read64(0),
      () => region.write8(0, 0),
      () => region.write16(0, 0),
      () => region.write32(0, 0),
      () => region.write64(0, 0n),
      () => region.readBytes(0, 4),
      () => region.writeBytes(0, new Uint8Array(4)),
      () => region.unsafeArrayBuffer,
    ]
  ) assert.throws(f, ClosedError);
}

test("region: whole mapping, every width, bounds, alignment, close", () => {
  const dev = new MemfdDevice();
  try {
    const region = Region.open(dev, 0, { info: info({ mmap: true }) });
    assert.equal(region.mapped, true);
    assert.deepEqual(region.mappedAreas, [{ offset: 0, size: SIZE }]);
    assert.equal(region.name, "BAR0");
    assert.equal(region.size, SIZE);
    exercise(region, dev, 0);
    exercise(region, dev, SIZE - 0x20);
    checkErrors(region);
    assert.equal(region.unsafeArrayBuffer.byteLength, SIZE);
    assert.equal(typeof region.unsafeAddress, "bigint");
    checkClosed(region);
  } finally {
    dev.close();
  }
});

test("region: pread/pwrite path (not mmappable) has the same API and checks", () => {
  const dev = new MemfdDevice();
  try {
    const region = Region.open(dev, 0, { info: info({ mmap: false }) });
    assert.equal(region.mapped, false);
    exercise(region, dev, 0x100);
    exercise(region, dev, SIZE - 0x20);
    checkErrors(region);
    assert.throws(() => region.unsafeArrayBuffer, UnsupportedError);
    assert.throws(() => Region.open(dev, 0, { info: info({ mmap: false }), mmap: "required" }), UnsupportedError);
    checkClosed(region);
  } finally {
    dev.close();
  }
});

test("region: sparse areas are mapped, the hole between them goes through pread/pwrite", () => {
  const dev = new MemfdDevice();
  try {
    const sparse = [{ offset: 0, size: 0x2000 }, { offset: 0x3000, size: SIZE - 0x3000 }];
    const region = Region.open(dev, 0, { info: info({ mmap: true, sparse }) });
    assert.deepEqual(region.mappedAreas, sparse);
    exercise(region, dev, 0x1000); // first area (fast path)
    exercise(region, dev, 0x2000); // the hole (pread/pwrite)
    exercise(region, dev, 0x4000); // second area (slow path, still mapped)
    // A bulk access that spans an area and the hole falls back to one pread/pwrite.
    region.writeBytes(0x1ffe, new Uint8Array([1, 2, 3, 4]));
    assert.deepEqual([...region.readBytes(0x1ffe, 4)], [1, 2, 3, 4]);
    checkErrors(region);
    checkClosed(region);
  } finally {
    dev.close();
  }
});

test("region: a region without the write flag refuses writes before any system call", () => {
  const dev = new MemfdDevice();
  try {
    using region = Region.open(dev, 6, { info: info({ mmap: true, writable: false }) });
    assert.equal(region.mapped, false);
    assert.equal(region.read32(0), 0);
    assert.throws(() => region.write32(0, 1), UnsupportedError);
  } finally {
    dev.close();
  }
});

test("region: use after the device is closed is a ClosedError on the pread path, never a crash", () => {
  const dev = new MemfdDevice();
  const region = Region.open(dev, 0, { info: info({ mmap: false }) });
  dev.close();
  assert.throws(() => region.read32(0), ClosedError);
  assert.throws(() => region.write32(0, 1), ClosedError);
  region.close();
});

test("region: mmap failure falls back to pread/pwrite in auto mode, throws in required mode", () => {
  const dev = new MemfdDevice();
  try {
    // An area at an offset that is not page-aligned: mmap fails with EINVAL.
    const sparse = [{ offset: 0x10, size: 0x1000 }];
    using region = Region.open(dev, 0, { info: info({ mmap: true, sparse }) });
    assert.equal(region.mapped, false);
    exercise(region, dev, 0x20);
    assert.throws(() => Region.open(dev, 0, { info: info({ mmap: true, sparse }), mmap: "required" }));
  } finally {
    dev.close();
  }
});
