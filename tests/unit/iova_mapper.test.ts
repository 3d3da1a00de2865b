import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ClosedError, OutOfRangeError, SystemError, throwErrno } from "../../lib/errors.ts";
import { IovaMapper } from "../../lib/iommu/iova_mapper.ts";
import type { IoAddressSpace, IovaRange } from "../../lib/iommu/types.ts";

/** Records what the mapper asks of the address space; optionally fails the next map with an errno. */
class FakeSpace implements IoAddressSpace {
  readonly calls: string[] = [];
  readonly mapped = new Map<bigint, { vaddr: bigint; size: number }>();
  failNextMap: number | null = null;
  /** IOVAs whose unmap fails with EBUSY. */
  readonly failUnmap = new Set<bigint>();
  constructor(readonly iovaRanges: readonly IovaRange[], readonly pageSizes: bigint = 0x40201000n) {}
  mapDma(vaddr: bigint, iova: bigint, sizeBytes: number): void {
    this.calls.push(`map ${vaddr.toString(16)} ${iova.toString(16)} ${sizeBytes}`);
    if (this.failNextMap !== null) {
      const errno = this.failNextMap;
      this.failNextMap = null;
      throwErrno("ioctl", errno, { target: "VFIO_IOMMU_MAP_DMA" });
    }
    this.mapped.set(iova, { vaddr, size: sizeBytes });
  }
  unmapDma(iova: bigint, sizeBytes: number): void {
    this.calls.push(`unmap ${iova.toString(16)} ${sizeBytes}`);
    if (this.failUnmap.has(iova)) throwErrno("ioctl", 16, { target: `unmap ${iova.toString(16)}` });
    assert.equal(this.mapped.get(iova)?.size, sizeBytes, "unmap must match a mapping exactly");
    this.mapped.delete(iova);
  }
}

const RANGES = [{ start: 0n, end: 0xfedfffffn }, { start: 0xfef00000n, end: (1n << 39n) - 1n }];

describe("IovaMapper over a recording IoAddressSpace", () => {
  it("maps at allocated IOVAs and reports them as contiguous bus addresses", () => {
    const space = new FakeSpace(RANGES);
    const mapper = new IovaMapper(space);
    const a = mapper.map(0x7f0000000000n, 4096);
    const b = mapper.map(0x7f0000200000n, 2 << 20);
    assert.equal(mapper.kind, "type1");
    assert.equal(a.kind, "type1");
    assert.equal(a.busAddress(0), 0x10000n);
    assert.equal(a.busAddress(100), 0x10064n);
    assert.equal(b.busAddress(0), 0x200000n, "2 MiB mappings are 2 MiB aligned");
    assert.ok(a.contiguous && b.contiguous);
    assert.deepEqual(space.calls, ["map 7f0000000000 10000 4096", "map 7f0000200000 200000 2097152"]);
    assert.throws(() => a.busAddress(4096), OutOfRangeError);
    assert.throws(() => a.busAddress(-1), OutOfRangeError);
  });

  it("close unmaps every mapping even when some fail, and reports every failure", () => {
    const space = new FakeSpace(RANGES);
    const mapper = new IovaMapper(space);
    const maps = [0, 1, 2, 3].map((i) => mapper.map(0x7f0000000000n + BigInt(i) * 0x1000n, 4096));
    space.failUnmap.add(maps[0].busAddress(0));
    space.failUnmap.add(maps[2].busAddress(0));
    let thrown: unknown;
    try {
      mapper.close();
    } catch (e) {
      thrown = e;
    }
    assert.equal(space.calls.filter((c) => c.startsWith("unmap")).length, 4, "every mapping was tried");
    assert.equal(space.mapped.size, 2, "the two that could be unmapped are gone");
    assert.ok(thrown instanceof SuppressedError, `both failures: ${thrown}`);
    const messages = [thrown.error, thrown.suppressed].map((e) => (e as Error).message).sort();
    assert.match(messages[0], /unmap 10000/);
    assert.match(messages[1], /unmap 12000/);
  });

  it("unmap removes the exact mapping and gives the IOVA back", () => {
    const space = new FakeSpace(RANGES);
    const mapper = new IovaMapper(space, { kind: "iommufd" });
    const a = mapper.map(0x7f0000000000n, 8192);
    assert.equal(a.kind, "iommufd");
    a.unmap();
    a.unmap(); // idempotent
    assert.deepEqual(space.calls.slice(1), ["unmap 10000 8192"]);
    assert.throws(() => a.busAddress(0), ClosedError);
    assert.equal(mapper.map(0x7f0000002000n, 8192).busAddress(0), 0x10000n, "IOVA reused");
    assert.equal(mapper.mappingCount, 1);
  });

  it("close() unmaps whatever is still mapped, once", () => {
    const space = new FakeSpace(RANGES);
    const mapper = new IovaMapper(space);
    const ms = [0, 1, 2].map((i) => mapper.map(0x7f0000000000n + BigInt(i) * 0x10000n, 0x10000));
    ms[1].unmap();
    mapper.close();
    mapper.close();
    assert.equal(space.mapped.size, 0);
    assert.equal(space.calls.filter((c) => c.startsWith("unmap")).length, 3);
    assert.throws(() => mapper.map(0x7f0000000000n, 4096), ClosedError);
  });

  it("respects maxIova (a device's DMA mask) and the space's smallest page", () => {
    const space = new FakeSpace(RANGES, 0x10000n /* 64 KiB pages only */);
    const mapper = new IovaMapper(space, { maxIova: 0x3ffffn });
    assert.throws(() => mapper.map(0x7f0000001000n, 0x10000), /not aligned/);
    assert.throws(() => mapper.map(0x7f0000000000n, 4096), /IOMMU page size 65536/);
    mapper.map(0x7f0000000000n, 0x10000);
    mapper.map(0x7f0000010000n, 0x10000);
    mapper.map(0x7f0000020000n, 0x10000);
    assert.throws(() => mapper.map(0x7f0000030000n, 0x10000), /IOVA space exhausted/);
  });

  it("starts at iovaBase inside the space's ranges; a base outside them is refused before anything is mapped", () => {
    const space = new FakeSpace(RANGES);
    const high = new IovaMapper(space, { iovaBase: 0x10_0000_0000n });
    assert.equal(high.iovaBase, 0x10_0000_0000n);
    assert.equal(high.map(0x7f0000000000n, 4096).busAddress(0), 0x10_0000_0000n);
    const hole = new IovaMapper(space, { iovaBase: 0xfee00000n });
    assert.throws(() => hole.map(0x7f0000000000n, 4096), (e: unknown) => {
      assert.ok(e instanceof OutOfRangeError);
      assert.match(e.message, /IOVA base 0xfee00000 is outside the IOVA ranges the kernel reports/);
      return true;
    });
    assert.equal(space.mapped.size, 1, "nothing mapped for the refused base");
  });

  it("explains ENOMEM (RLIMIT_MEMLOCK) and ENOSPC (dma_entry_limit), and frees the IOVA", () => {
    const space = new FakeSpace(RANGES);
    const mapper = new IovaMapper(space);
    space.failNextMap = 12;
    assert.throws(() => mapper.map(0x7f0000000000n, 4096), (e: unknown) => {
      assert.ok(e instanceof SystemError);
      assert.equal(e.code, "ENOMEM");
      assert.match(e.message, /RLIMIT_MEMLOCK/);
      assert.match(e.message, /ulimit -l/);
      return true;
    });
    space.failNextMap = 28;
    assert.throws(() => mapper.map(0x7f0000000000n, 4096), (e: unknown) => {
      assert.ok(e instanceof SystemError);
      assert.equal(e.code, "ENOSPC");
      assert.match(e.message, /dma_entry_limit/);
      assert.match(e.message, /hugepages/);
      return true;
    });
    assert.equal(mapper.allocator.bytesInUse, 0n);
    assert.equal(mapper.map(0x7f0000000000n, 4096).busAddress(0), 0x10000n);
  });

  it("reads the space's ranges only at the first map (a type1 container has none before SET_IOMMU)", () => {
    let ready = false;
    const space = new FakeSpace(RANGES);
    const lazy: IoAddressSpace = {
      get iovaRanges() {
        if (!ready) throw new Error("IOMMU model not set yet");
        return space.iovaRanges;
      },
      get pageSizes() {
        if (!ready) throw new Error("IOMMU model not set yet");
        return space.pageSizes;
      },
      mapDma: (v, i, n) => space.mapDma(v, i, n),
      unmapDma: (i, n) => space.unmapDma(i, n),
    };
    const mapper = new IovaMapper(lazy);
    ready = true;
    assert.equal(mapper.map(0x7f0000000000n, 4096).busAddress(0), 0x10000n);
    mapper.close();
  });
});
