import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { libc } from "../../ffi/libc.ts";
import { DmaMemory, memlockRemedy } from "../../lib/dma/memory.ts";
import { ClosedError, OutOfRangeError, SystemError, VfioError } from "../../lib/errors.ts";
import { hugepageStatus } from "../../lib/sysfs/hugepages.ts";

/** Unused 2 MiB hugepages right now. */
function free2M(): number {
  const p = hugepageStatus().pools.find((pool) => pool.sizeKiB === 2048);
  return p ? p.free - p.reserved : 0;
}

/** The VmLck line of /proc/self/status (kB): how much of this process is mlocked. */
function lockedKiB(): number {
  const m = /VmLck:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return m ? Number(m[1]) : -1;
}

describe("DmaMemory", () => {
  it("allocates base pages rounded up, zeroed, locked, and unlocks on close", () => {
    const before = lockedKiB();
    const mem = DmaMemory.alloc(5000, { hugepages: "never" });
    assert.equal(mem.size, 2 * libc.pageSize);
    assert.equal(mem.hugepage, false);
    assert.equal(mem.pageSize, libc.pageSize);
    assert.equal(mem.vaddr % BigInt(libc.pageSize), 0n);
    assert.equal(lockedKiB() - before, mem.size / 1024, "mlock counted in VmLck");
    const bytes = new Uint8Array(libc.arrayBuffer(mem.vaddr, mem.size));
    assert.ok(bytes.every((b) => b === 0));
    bytes.buffer.transfer(0);
    mem.close();
    mem.close();
    assert.equal(lockedKiB(), before);
    assert.throws(() => mem.vaddr, ClosedError);
  });

  it("rejects bad sizes and policies", () => {
    assert.throws(() => DmaMemory.alloc(0), OutOfRangeError);
    assert.throws(() => DmaMemory.alloc(1.5), OutOfRangeError);
    // deno-lint-ignore no-explicit-any
    assert.throws(() => DmaMemory.alloc(4096, { hugepages: "always" as any }), /unknown hugepage policy/);
  });

  it('"require" gives 2 MiB pages or an error saying how to reserve them', () => {
    if (free2M() > 0) {
      using mem = DmaMemory.alloc(4096, { hugepages: "require" });
      assert.equal(mem.hugepage, true);
      assert.equal(mem.size, 2 << 20);
      assert.equal(mem.vaddr % BigInt(2 << 20), 0n);
      return;
    }
    assert.throws(() => DmaMemory.alloc(4096, { hugepages: "require" }), (e: unknown) => {
      assert.ok(e instanceof SystemError);
      assert.equal(e.code, "ENOMEM");
      assert.match(e.message, /nr_hugepages/);
      assert.match(e.message, /hugepages: "prefer"/);
      return true;
    });
  });

  it('"prefer" falls back to base pages when no hugepage is free', () => {
    const free = free2M();
    using mem = DmaMemory.alloc(4096, { hugepages: "prefer" });
    assert.equal(mem.hugepage, free > 0);
  });

  it("names RLIMIT_MEMLOCK, its value and how to raise it", () => {
    const r = memlockRemedy();
    assert.match(r, /RLIMIT_MEMLOCK \(soft .*, hard .*\)/);
    assert.match(r, /ulimit -l/);
    assert.match(r, /LimitMEMLOCK/);
    assert.ok(new VfioError("x", { remedy: r }).message.includes("limits.conf"));
  });
});
