import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { libc } from "../../ffi/libc.ts";
import { DmaMemory } from "../../lib/dma/memory.ts";
import { openPagemapFd, physicalAddressOf, readPagemapEntry, translatePages } from "../../lib/dma/pagemap.ts";
import { ClosedError, OutOfRangeError } from "../../lib/errors.ts";
import { NoiommuMapper, PhysicalMapping } from "../../lib/iommu/noiommu.ts";
import { skipBecause } from "../skip.ts";

const root = libc.geteuid() === 0;
const PFN_MASK = (1n << 55n) - 1n;

describe("pagemap translation", () => {
  it("reads present entries with nonzero frames (root)", { skip: skipBecause(!root && "needs root") }, () => {
    using mem = DmaMemory.alloc(4 * libc.pageSize, { hugepages: "never" });
    const fd = openPagemapFd();
    try {
      const entry = readPagemapEntry(fd, mem.vaddr);
      assert.equal(entry >> 63n, 1n, "bit 63: present");
      assert.notEqual(entry & PFN_MASK, 0n, "PFN visible to CAP_SYS_ADMIN");
    } finally {
      libc.close(fd);
    }
    const pages = translatePages(mem.vaddr, mem.size);
    assert.equal(pages.length, 4);
    for (const p of pages) {
      assert.notEqual(p, 0n);
      assert.equal(p % BigInt(libc.pageSize), 0n);
    }
    assert.equal(physicalAddressOf(mem.vaddr + BigInt(libc.pageSize) + 123n), pages[1] + 123n);
  });

  it(
    "reports hidden frame numbers as a CAP_SYS_ADMIN error (non-root)",
    { skip: skipBecause(root && "runs as root") },
    () => {
      using mem = DmaMemory.alloc(libc.pageSize, { hugepages: "never" });
      assert.throws(() => translatePages(mem.vaddr, mem.size), /CAP_SYS_ADMIN/);
    },
  );

  it("rejects unaligned ranges", () => {
    assert.throws(() => translatePages(0x1001n, 4096), OutOfRangeError);
    assert.throws(() => translatePages(0x1000n, 100), OutOfRangeError);
  });
});

describe("PhysicalMapping", () => {
  it("looks addresses up per page and detects contiguity", () => {
    const scattered = new PhysicalMapping(new BigUint64Array([0x5000n, 0x9000n, 0xa000n]), 4096);
    assert.equal(scattered.contiguous, false);
    assert.equal(scattered.busAddress(0), 0x5000n);
    assert.equal(scattered.busAddress(4095), 0x5fffn);
    assert.equal(scattered.busAddress(4096), 0x9000n);
    assert.equal(scattered.busAddress(2 * 4096 + 8), 0xa008n);
    assert.throws(() => scattered.busAddress(3 * 4096), OutOfRangeError);
    assert.throws(() => scattered.busAddress(0.5), OutOfRangeError);
    const run = new PhysicalMapping(new BigUint64Array([0x200000n, 0x201000n]), 4096);
    assert.equal(run.contiguous, true);
    assert.equal(run.busAddress(5000), 0x200000n + 5000n);
    run.unmap();
    assert.throws(() => run.busAddress(0), ClosedError);
  });
});

describe("NoiommuMapper", { skip: skipBecause(!root && "needs root") }, () => {
  it("maps with one table and forgets on unmap/close", () => {
    using mem = DmaMemory.alloc(8 * libc.pageSize, { hugepages: "never" });
    const mapper = new NoiommuMapper();
    const m = mapper.map(mem.vaddr, mem.size);
    const pages = translatePages(mem.vaddr, mem.size);
    for (let i = 0; i < pages.length; i++) assert.equal(m.busAddress(i * libc.pageSize + 7), pages[i] + 7n);
    const m2 = mapper.map(mem.vaddr, libc.pageSize);
    assert.equal(mapper.mappingCount, 2);
    m.unmap();
    assert.equal(mapper.mappingCount, 1);
    mapper.close();
    assert.throws(() => m2.busAddress(0), ClosedError);
    assert.throws(() => mapper.map(mem.vaddr, libc.pageSize), ClosedError);
  });

  // Correctness only: how much faster the table is than a pagemap pread per lookup is a benchmark figure (P4 in
  // bench/, BENCHMARKS.md), never a timed assertion in a test.
  it("busAddress answers from the table what a pagemap pread per lookup would", () => {
    using mem = DmaMemory.alloc(1 << 20, { hugepages: "never" });
    using mapper = new NoiommuMapper();
    const m = mapper.map(mem.vaddr, mem.size);
    const fd = openPagemapFd();
    const scratch = new BigUint64Array(1);
    try {
      for (let i = 0; i < 64; i++) {
        const off = (i * 16_456) & 0xfffff;
        const viaPread = (readPagemapEntry(fd, mem.vaddr + BigInt(off), scratch) & PFN_MASK) * 4096n +
          BigInt(off & 4095);
        assert.equal(m.busAddress(off), viaPread, `offset 0x${off.toString(16)}`);
      }
    } finally {
      libc.close(fd);
    }
  });
});
