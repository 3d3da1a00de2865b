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

import { readFileSync } from "node:fs";
import { MFD_CLOEXEC } from "../../ffi/constants.ts";
import { libc } from "../../ffi/libc.ts";
import {
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
} from "../../lib/abi/vfio.ts";
import { ClosedError, OutOfRangeError, SizeLimitError, UnsupportedError } from "../../lib/errors.ts";
import { Region, type RegionInfo, regionName, type SparseMmapArea } from "../../lib/region.ts";
import type { DeviceFd } from "../../lib/types.ts";
import { maxViewBytes, setMaxViewBytesForTesting } from "../../lib/views.ts";

const SIZE = 0x10000;
const FILE_OFFSET = 0x4000; // the region starts this far into the "device fd", like VFIO's index << 40

/** A memfd standing in for a device fd; `fd` throws ClosedError once closed, as the real DeviceFd does. */
class MemfdDevice implements DeviceFd {
  #fd: number;
  readonly name = "memfd:0000:00:00.0";
  constructor(size = SIZE) {
    this.#fd = libc.memfdCreate("vfio-ts-region-test", MFD_CLOEXEC);
    libc.ftruncate(this.#fd, FILE_OFFSET + size); // sparse: pages exist once written
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

/** Every access width at `base` of `region`, checked in the file at `at` (the same place seen from the device). */
function exercise(region: Region, dev: MemfdDevice, base: number, at = base): void {
  region.write8(base + 0, 0x11);
  region.write8(base + 1, 0x22);
  region.write16(base + 2, 0x4433);
  region.write32(base + 4, 0x88776655);
  region.write64(base + 8, 0x100f0e0d0c0b0a09n);
  assert.deepEqual([...dev.peek(at, 16)], [
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
  // Negative values are written in two's complement; values that do not fit the width are refused, not wrapped.
  region.write32(base + 4, -1);
  assert.equal(region.read32(base + 4), 0xffffffff);
  assert.throws(() => region.write16(base + 2, 0x12345), OutOfRangeError);
  assert.equal(region.read16(base + 2), 0x4433);
  // Writes behind the region's back are seen (the mapping is shared, pread reads the file).
  dev.poke(at + 4, new Uint8Array([1, 2, 3, 4]));
  assert.equal(region.read32(base + 4), 0x04030201);
  // Bulk access.
  region.writeBytes(base + 16, new Uint8Array([9, 8, 7, 6, 5]));
  assert.deepEqual([...region.readBytes(base + 16, 5)], [9, 8, 7, 6, 5]);
  assert.deepEqual([...dev.peek(at + 16, 5)], [9, 8, 7, 6, 5]);
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

/** Runs `fn` with a fresh memfd "device" of `size` bytes, closed afterwards whatever happens. */
function withMemfd(fn: (dev: MemfdDevice) => void, size = SIZE): void {
  const dev = new MemfdDevice(size);
  try {
    fn(dev);
  } finally {
    dev.close();
  }
}

/** This process's mappings of the test memfds (from /proc/self/maps). */
function memfdMappings(): string[] {
  return readFileSync("/proc/self/maps", "utf8").split("\n").filter((l) => l.includes("vfio-ts-region-test"));
}

const GiB = 2 ** 30;

test("region: a 16 GiB region is mapped whole on both runtimes and reached at its last page", () =>
  withMemfd((dev) => {
    const before = memfdMappings().length;
    const region = Region.open(dev, 0, { info: info({ mmap: true, size: 16 * GiB }) });
    assert.equal(region.mapped, true, `mapped although the runtime's views stop at ${maxViewBytes()} bytes`);
    assert.deepEqual(region.mappedAreas, [{ offset: 0, size: 16 * GiB }]);
    assert.equal(memfdMappings().length, before + 1);
    region.write32(16 * GiB - 4, 0xcafef00d);
    assert.equal(region.read32(16 * GiB - 4), 0xcafef00d);
    assert.deepEqual([...dev.peek(16 * GiB - 4, 4)], [0x0d, 0xf0, 0xfe, 0xca]);
    region.write64(8 * GiB, 0x1122334455667788n);
    assert.equal(region.read64(8 * GiB), 0x1122334455667788n);
    // A copy across the 4 GiB line (two views on Bun).
    region.writeBytes(4 * GiB - 4, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
    assert.deepEqual([...region.readBytes(4 * GiB - 4, 8)], [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual([...dev.peek(4 * GiB - 4, 8)], [1, 2, 3, 4, 5, 6, 7, 8]);
    const tail = region.window(16 * GiB - 4096, 4096);
    assert.equal(tail.read32(4092), 0xcafef00d);
    tail.write16(0, 0xbeef);
    assert.deepEqual([...dev.peek(16 * GiB - 4096, 2)], [0xef, 0xbe]);
    region.close();
    assert.throws(() => tail.read32(0), ClosedError);
    assert.equal(memfdMappings().length, before, "nothing stays mapped");
  }, 16 * GiB));

test("region: opening and closing a region over the view limit leaks no mapping (auto and required)", () =>
  withMemfd((dev) => {
    const before = memfdMappings().length;
    for (const mmap of ["auto", "required"] as const) {
      for (let i = 0; i < 3; i++) {
        const r = Region.open(dev, 0, { info: info({ mmap: true, size: 5 * GiB }), mmap });
        assert.equal(r.mapped, true);
        r.close();
      }
    }
    // A failure after the first area is mapped unmaps it (the second area is not page-aligned: EINVAL).
    const sparse = [{ offset: 0, size: 0x1000 }, { offset: 0x1010, size: 0x1000 }];
    assert.throws(() => Region.open(dev, 0, { info: info({ mmap: true, sparse }), mmap: "required" }));
    using fallback = Region.open(dev, 0, { info: info({ mmap: true, sparse }) });
    assert.equal(fallback.mapped, false);
    assert.equal(memfdMappings().length, before);
  }, 5 * GiB));

test("region: windows have their own bounds, share the mapping, and close with the region", () =>
  withMemfd((dev) => {
    const region = Region.open(dev, 0, { info: info({ mmap: true }) });
    const w = region.window(0x1000, 0x100);
    assert.equal(w.size, 0x100);
    assert.equal(w.windowOffset, 0x1000);
    assert.deepEqual(w.mappedAreas, [{ offset: 0, size: 0x100 }]);
    exercise(w, dev, 0, 0x1000); // offsets are the window's: its 0 is the region's 0x1000
    assert.equal(w.read64(8), region.read64(0x1008));
    assert.throws(() => w.read32(0x100), /beyond the region's 0x100 bytes/);
    assert.throws(() => region.window(4, 8), OutOfRangeError); // not a multiple of 8
    assert.throws(() => region.window(SIZE - 8, 16), OutOfRangeError);
    assert.throws(() => region.window(0, 0), OutOfRangeError);
    assert.throws(() => w.unsafeArrayBuffer, UnsupportedError);
    assert.equal(w.unsafeAddress, region.unsafeAddress + 0x1000n);
    // A window of a window, and a window closed on its own (the region keeps working).
    const ww = w.window(0x80, 0x10);
    ww.write32(0, 0x01020304);
    assert.equal(region.read32(0x1080), 0x01020304);
    ww.close();
    assert.throws(() => ww.read32(0), ClosedError);
    assert.equal(region.read32(0x1080), 0x01020304);
    // Through pread/pwrite as well.
    using io = Region.open(dev, 0, { info: info({ mmap: false }) });
    const iw = io.window(0x2000, 0x40);
    iw.write32(4, 0xa5a5a5a5);
    assert.deepEqual([...dev.peek(0x2004, 4)], [0xa5, 0xa5, 0xa5, 0xa5]);
    region.close();
    assert.throws(() => w.read32(0), ClosedError);
    assert.throws(() => w.write32(0, 1), ClosedError);
    assert.equal(w.closed, true);
  }));

test("region: with the view limit lowered, accesses, copies and windows span the pieces", () => {
  const old = setMaxViewBytesForTesting(0x4000);
  const dev = new MemfdDevice();
  try {
    using region = Region.open(dev, 0, { info: info({ mmap: true }) });
    assert.equal(region.unsafeArrayBuffer.byteLength, 0x4000, "the first piece");
    for (const base of [0, 0x3fe0, 0x4000, SIZE - 0x20]) exercise(region, dev, base);
    const bytes = Uint8Array.from({ length: 0x4010 }, (_, i) => i & 0xff);
    region.writeBytes(0x3ff8, bytes);
    assert.deepEqual(region.readBytes(0x3ff8, bytes.length), bytes);
    assert.deepEqual(dev.peek(0x3ff8, bytes.length), bytes);
    using w = region.window(0x3ff0, 0x20); // straddles two pieces
    assert.equal(w.read32(0x8), region.read32(0x3ff8));
    w.write64(0x10, 0x0102030405060708n);
    assert.equal(region.read64(0x4000), 0x0102030405060708n);
  } finally {
    setMaxViewBytesForTesting(old);
    dev.close();
  }
});

test("region: every write width refuses non-integers and values out of range, on both paths", () =>
  withMemfd((dev) => {
    for (const mmap of [true, false]) {
      using region = Region.open(dev, 0, { info: info({ mmap }) });
      region.write32(0, 0x11223344);
      for (const bad of [NaN, 1.5, Infinity, -Infinity, 2 ** 32, -(2 ** 31) - 1, "1" as unknown as number]) {
        assert.throws(() => region.write32(0, bad), OutOfRangeError, `write32(${String(bad)})`);
      }
      for (const bad of [NaN, 0.5, 256, -129]) assert.throws(() => region.write8(0, bad), OutOfRangeError);
      for (const bad of [NaN, 0.5, 0x10000, -0x8001]) assert.throws(() => region.write16(0, bad), OutOfRangeError);
      for (const bad of [1n << 64n, -(1n << 63n) - 1n, 5 as unknown as bigint]) {
        assert.throws(() => region.write64(0, bad), OutOfRangeError);
      }
      assert.equal(region.read32(0), 0x11223344, "nothing was written");
      region.write8(0, -1);
      region.write16(2, -2);
      region.write64(8, -1n);
      assert.equal(region.read8(0), 0xff);
      assert.equal(region.read16(2), 0xfffe);
      assert.equal(region.read64(8), 0xffffffffffffffffn);
      // A fractional offset is the same typed error on both runtimes, for every access.
      for (
        const f of [
          () => region.read8(1.5),
          () => region.write8(1.5, 0),
          () => region.read32(4.5),
          () => region.write32(4.5, 0),
          () => region.readBytes(1.5, 1),
          () => region.writeBytes(1.5, new Uint8Array(1)),
          () => region.window(8.5, 8),
        ]
      ) assert.throws(f, OutOfRangeError);
    }
  }));

test("region: a size beyond 2^53 is refused before anything is mapped", () =>
  withMemfd((dev) => {
    const before = memfdMappings().length;
    assert.throws(() => Region.open(dev, 0, { info: info({ mmap: true, size: 2 ** 60 }) }), SizeLimitError);
    assert.equal(memfdMappings().length, before);
  }));
