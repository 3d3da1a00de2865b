// A soak against real vfio-pci in the guest, every mode, both runtimes: many DMA map/unmap cycles (allocDma + close:
// mmap, mlock, MAP_DMA / pagemap, UNMAP_DMA, munmap) and many edu MSIs (raise 0x60, eventfd, acknowledge 0x64),
// each interrupt checked to arrive, then this process's fds, locked memory (VmLck) and mappings must be back where
// they were. Its own file so the test command can run it in every combination or as a separate step.
// Counts: VFIO_TS_SOAK_DMA (default 10000) and VFIO_TS_SOAK_IRQS (default 100000, see below); durations are printed.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { IrqIndex } from "../../lib/irq.ts";
import { eduRoundTrip, IRQ_ACK, IRQ_RAISE, IRQ_STATUS, prepareEdu } from "./fixtures/edu_ops.ts";
import { guest, openInGuest, skipIf } from "./guest.ts";

const DMA_CYCLES = guest.soak.dma || 10_000;
const IRQS = guest.soak.irqs || 100_000;
const LONG = 1_200_000;

interface Usage {
  /** Open fds. */
  fds: number;
  /** Every mapping of the process (/proc/self/maps lines): the runtime's heap adds and drops some as it likes. */
  maps: number;
  /**
   * Locked mappings marked MADV_DONTFORK (smaps VmFlags `lo` and `dc`): DMA memory. (Deno's own heap has `dc`
   * mappings that come and go; no runtime heap is mlocked.)
   */
  dmaMaps: number;
  /** Device mappings (VmFlags `io`/`pf`): BARs. */
  ioMaps: number;
  /** Locked memory (VmLck). */
  lockedKiB: number;
}

function usage(): Usage {
  const flags = [...readFileSync("/proc/self/smaps", "utf8").matchAll(/^VmFlags:(.*)$/gm)].map((m) => m[1].split(" "));
  return {
    fds: readdirSync("/proc/self/fd").length,
    maps: readFileSync("/proc/self/maps", "utf8").split("\n").filter(Boolean).length,
    dmaMaps: flags.filter((f) => f.includes("dc") && f.includes("lo")).length,
    ioMaps: flags.filter((f) => f.includes("io") || f.includes("pf")).length,
    lockedKiB: Number(/^VmLck:\s+(\d+)/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1]),
  };
}

/** The library's resources are back where they were; the runtime's own mappings may vary a little. */
function assertUnchanged(before: Usage, after: Usage, cycles: number): void {
  assert.equal(after.fds, before.fds, "fds");
  assert.equal(after.dmaMaps, before.dmaMaps, "DMA mappings (locked, MADV_DONTFORK)");
  assert.equal(after.ioMaps, before.ioMaps, "device mappings");
  assert.equal(after.lockedKiB, before.lockedKiB, "locked memory (VmLck)");
  assert.ok(after.maps - before.maps < cycles / 20, `mappings ${before.maps} -> ${after.maps} over ${cycles} cycles`);
}

const tag = `${guest.mode} × ${"Bun" in globalThis ? "bun" : "deno"}`;

describe("soak", { skip: skipIf(guest.edu, "edu") }, () => {
  it(`${DMA_CYCLES} DMA map/unmap cycles leave fds, mappings and locked memory as they were`, {
    timeout: LONG,
  }, () => {
    using dev = openInGuest(guest.edu!);
    prepareEdu(dev);
    {
      // The measures see a live buffer: a leaked one would show.
      const base = usage();
      const buf = dev.allocDma(8192, { hugepages: "never" });
      const live = usage();
      buf.close();
      assert.ok(live.dmaMaps > base.dmaMaps && live.lockedKiB >= base.lockedKiB + 8, JSON.stringify({ base, live }));
    }
    const cycle = (i: number): void => {
      const buf = dev.allocDma(8192, { hugepages: "never" });
      if (i % 1000 === 0) eduRoundTrip(dev, buf, i & 0xff); // the mappings work, not only come and go
      buf.close();
    };
    for (let i = 0; i < 100; i++) cycle(i); // warm-up: the runtime's JIT and heap settle
    const before = usage();
    const t0 = performance.now();
    for (let i = 0; i < DMA_CYCLES; i++) cycle(i);
    const ms = performance.now() - t0;
    const after = usage();
    console.log(
      `soak ${tag}: ${DMA_CYCLES} DMA map/unmap cycles in ${(ms / 1000).toFixed(1)} s ` +
        `(${(ms * 1000 / DMA_CYCLES).toFixed(0)} µs each); before ${JSON.stringify(before)} after ${
          JSON.stringify(after)
        }`,
    );
    assertUnchanged(before, after, DMA_CYCLES);
  });

  it(`${IRQS} edu MSIs, each received through the eventfd, leave fds and mappings as they were`, {
    timeout: LONG,
  }, () => {
    using dev = openInGuest(guest.edu!);
    prepareEdu(dev);
    const bar0 = dev.bar(0);
    const before = usage();
    const t0 = performance.now();
    let received = 0;
    {
      using msi = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
      for (let i = 0; i < IRQS; i++) {
        bar0.write32(IRQ_RAISE, 0x1);
        let n = msi.spin(0, { maxSpins: 1_000_000 });
        if (n === 0) n = msi.spin(0, { maxSpins: 10_000_000 });
        assert.ok(n >= 1, `interrupt ${i} did not arrive`);
        received += n;
        bar0.write32(IRQ_ACK, bar0.read32(IRQ_STATUS));
        if (i === 999) {
          const rate = 1000 / ((performance.now() - t0) / 1000);
          console.log(`soak ${tag}: first 1000 MSIs at ${rate.toFixed(0)}/s`);
        }
      }
    }
    const ms = performance.now() - t0;
    const after = usage();
    console.log(
      `soak ${tag}: ${IRQS} MSIs (${received} counted) in ${(ms / 1000).toFixed(1)} s ` +
        `(${(IRQS / (ms / 1000)).toFixed(0)}/s); before ${JSON.stringify(before)} after ${JSON.stringify(after)}`,
    );
    assert.equal(received, IRQS, "one eventfd count per raised interrupt");
    assertUnchanged(before, after, IRQS);
  });
});
