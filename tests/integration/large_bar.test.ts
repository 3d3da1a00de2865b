/**
 * A 16 GiB BAR through real vfio-pci in the guest: QEMU's ivshmem-plain with a 16 GiB shared-memory BAR2 (the
 * rig's `ivshmem` device kind, not in the default set: `--devices ivshmem`). The region is mmapped whole on both
 * runtimes (Bun's typed arrays stop at 4 GiB, so the library covers it with several views), its last page is
 * written and read back by offset and through a window, a copy across the 4 GiB line works, and closing it leaves
 * no mapping behind. Skipped, with the reason printed, outside the rig or without the device.
 * @module
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { ClosedError, OutOfRangeError } from "../../lib/errors.ts";
import { regionInfo } from "../../lib/region.ts";
import { maxViewBytes } from "../../lib/views.ts";

import { guest, openInGuest } from "./guest.ts";

const GiB = 2 ** 30;
const BAR = 2; // ivshmem-plain: BAR0 registers, BAR2 the shared memory
const IVSHMEM = guest.ivshmem;

const skip = !guest.inVm
  ? "outside the VM rig (VFIO_TS_IN_VM unset)"
  : IVSHMEM
  ? false
  : "no ivshmem in the guest (run with --devices ivshmem)";
if (skip) console.log(`large_bar.test.ts skipped: ${skip}`);

/** Mappings of this process at least `bytes` long (from /proc/self/maps). */
function bigMappings(bytes: number): string[] {
  return readFileSync("/proc/self/maps", "utf8").split("\n").filter((line) => {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    return m !== null && Number(BigInt(`0x${m[2]}`) - BigInt(`0x${m[1]}`)) >= bytes;
  });
}

test("ivshmem: a 16 GiB BAR is mmapped whole and reached at its last page", { skip, timeout: 120_000 }, () => {
  const before = bigMappings(16 * GiB).length;
  using dev = openInGuest(IVSHMEM!);
  const info = regionInfo(dev, BAR);
  assert.equal(info.size, 16 * GiB);
  assert.ok(info.mmappable, `BAR2 flags 0x${info.flags.toString(16)}`);
  const bar = dev.region(BAR, { mmap: "required" });
  assert.equal(bar.mapped, true);
  assert.deepEqual(bar.mappedAreas, [{ offset: 0, size: 16 * GiB }]);
  assert.equal(bigMappings(16 * GiB).length, before + 1, "one 16 GiB mapping");
  console.log(`runtime view limit ${maxViewBytes()} bytes; BAR2 mapped whole`);

  // The last page, by offset (beyond 2^32: the region's slow path finds the piece).
  const last = bar.size - 8;
  bar.write64(last, 0x0123456789abcdefn);
  assert.equal(bar.read64(last), 0x0123456789abcdefn);
  assert.equal(bar.read32(bar.size - 4), 0x01234567);
  bar.write32(bar.size - 4096, 0xcafef00d);
  assert.equal(bar.read32(bar.size - 4096), 0xcafef00d);
  assert.throws(() => bar.read32(bar.size), OutOfRangeError);

  // The same page through a window, with its own bounds and fast path.
  {
    using tail = bar.window(bar.size - 4096, 4096);
    assert.equal(tail.size, 4096);
    assert.equal(tail.read32(0), 0xcafef00d);
    assert.equal(tail.read64(4088), 0x0123456789abcdefn);
    tail.write32(8, 0x5a5a5a5a);
    assert.equal(bar.read32(bar.size - 4096 + 8), 0x5a5a5a5a);
    assert.throws(() => tail.read32(4096), OutOfRangeError);
  }

  // A copy across the 4 GiB line (two views on Bun, one on Deno).
  const bytes = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
  bar.writeBytes(4 * GiB - 16, bytes);
  assert.deepEqual([...bar.readBytes(4 * GiB - 16, 32)], [...bytes]);
  assert.equal(bar.read32(4 * GiB), 0x14131211);

  // A window that outlives nothing: closing the region closes it.
  const w = bar.window(12 * GiB, 8192);
  w.write32(0, 7);
  bar.close();
  assert.throws(() => w.read32(0), ClosedError);
  assert.throws(() => bar.read32(0), ClosedError);
  assert.equal(bigMappings(16 * GiB).length, before, "the mapping is gone after close");
});

test("ivshmem: auto mode maps the 16 GiB BAR (no silent pread fallback), every open and close", {
  skip,
  timeout: 120_000,
}, () => {
  const before = bigMappings(16 * GiB).length;
  using dev = openInGuest(IVSHMEM!);
  for (let i = 0; i < 3; i++) {
    const bar = dev.region(BAR);
    assert.equal(bar.mapped, true, "auto mode maps it");
    bar.write32(bar.size - 4, i);
    assert.equal(bar.read32(bar.size - 4), i);
    bar.close();
    assert.equal(bigMappings(16 * GiB).length, before, `open/close #${i + 1} leaves no mapping`);
  }
});
