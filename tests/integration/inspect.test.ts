// What the library's resources print in the guest: Deno.inspect (Deno's console.log) and node:util's inspect (Bun's
// console.log) show the device's address and IOMMU path, regions with sizes and flags, bus address ranges, IRQ vectors,
// groups and IOVA spaces, open and closed; toJSON() gives the same as a plain object for JSON.stringify.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { inspect } from "node:util";
import { Container } from "../../lib/container.ts";
import { Group } from "../../lib/group.ts";
import { Iommufd } from "../../lib/iommu/iommufd.ts";
import { IrqIndex } from "../../lib/irq.ts";
import { pciDevice } from "../../lib/sysfs/pci.ts";
import { guest, openInGuest, releaseDevices, skipIf } from "./guest.ts";

const edu = guest.edu ?? "";
const backend = guest.mode === "noiommu" ? "noiommu" : guest.mode === "iommu" ? "type1" : "iommufd";

/** The runtime's own inspection: Deno.inspect under Deno, node:util's inspect under Bun (what console.log uses). */
function show(value: unknown): string {
  const deno = (globalThis as { Deno?: { inspect(v: unknown, o?: object): string } }).Deno;
  return deno ? deno.inspect(value, { depth: 4 }) : inspect(value, { depth: 4 });
}

describe("inspection", { timeout: 120_000 }, () => {
  afterEach(releaseDevices);

  it("a device, its BAR, DMA buffer, pool and MSI set print what matters", { skip: skipIf(guest.edu, "edu") }, () => {
    const dev = openInGuest(edu);
    const bar0 = dev.bar(0);
    const buf = dev.allocDma(8192);
    const pool = dev.allocDmaPool({ entrySize: 2048, count: 4 });
    pool.alloc();
    const msi = dev.enableIrqs(IrqIndex.MSI, { count: 1 });

    for (const text of [show(dev), inspect(dev, { depth: 4 })]) {
      assert.match(text, /^Device \{/);
      assert.ok(text.includes(edu), text);
      assert.ok(text.includes(backend), text);
      assert.match(text, /BAR0/);
      assert.match(text, /MSI/);
      assert.match(text, /closed: false/);
    }
    const region = show(bar0);
    assert.match(region, /^Region \{/);
    assert.match(region, /size: ["']1 MiB["']/, region); // edu's BAR0
    assert.match(region, /flags: ["']read,write,mmap["']/, region);
    assert.match(region, /access: ["']mmap["']/, region);

    const b = show(buf);
    assert.match(b, /^DmaBuffer \{/);
    // 8 KiB rounded up to the backing page: a 2 MiB hugepage when an earlier test left some reserved
    const shown = buf.size === 8192 ? "8 KiB" : "2 MiB";
    assert.equal(buf.size, shown === "8 KiB" ? 8192 : 2 << 20);
    assert.match(b, new RegExp(`size: ["']${shown}["']`), b);
    const first = buf.busAddress(0);
    if (buf.contiguous) {
      assert.ok(b.includes(`0x${first.toString(16)}-0x${(first + BigInt(buf.size - 1)).toString(16)}`), b);
    } else assert.ok(b.includes(`0x${first.toString(16)}`), b);
    assert.ok(b.includes(`0x${buf.vaddr.toString(16)}`), b);

    const p = show(pool);
    assert.match(p, /^DmaPool \{/);
    assert.match(p, /entrySize: 2048/);
    assert.match(p, /available: 3/, p);

    const m = show(msi);
    assert.match(m, /^IrqSet \{/);
    assert.match(m, /index: ["']MSI["']/, m);
    assert.match(m, /vectors: \[ ["']0["'] \]/, m);

    const json = JSON.parse(JSON.stringify(dev));
    assert.equal(json.name, edu);
    assert.equal(json.iommu, backend);
    assert.equal(json.regions[0].name, "BAR0");
    assert.equal(json.irqs[0].index, "MSI");
    assert.equal(JSON.parse(JSON.stringify(buf)).size, shown);

    dev.close();
    assert.match(show(dev), /closed: true/);
    assert.match(show(buf), /closed: true/);
    assert.doesNotMatch(show(buf), /vaddr/);
    assert.match(show(bar0), /access: ["']closed["']/);
    assert.match(show(msi), /closed: true/);
  });

  it("a group, a container and an IOAS print their state", { skip: skipIf(guest.edu, "edu") }, () => {
    const n = pciDevice(edu).iommuGroup!;
    const group = Group.open(n, { noiommu: guest.mode === "noiommu" });
    try {
      const g = show(group);
      assert.match(g, /^Group \{/);
      assert.ok(g.includes(`number: ${n}`), g);
      assert.match(g, /viable: true/, g);
      assert.match(g, /containerSet: false/, g);
    } finally {
      group.close();
    }
    assert.match(show(group), /closed: true/);

    const container = Container.open();
    try {
      const c = show(container);
      assert.match(c, /^Container \{/);
      assert.match(c, /path: ["']\/dev\/vfio\/vfio["']/, c);
      assert.match(c, /iommu: ["']unset["']/, c);
      assert.match(c, /count: 0/, c);
    } finally {
      container.close();
    }

    if (guest.mode === "iommufd") {
      using iommufd = Iommufd.open();
      const ioas = iommufd.allocIoas();
      const i = show(ioas);
      assert.match(i, /^Ioas \{/);
      assert.ok(i.includes(`id: ${ioas.id}`), i);
      assert.ok(show(iommufd).includes(`ioas: [ ${ioas.id} ]`), show(iommufd));
    }
  });
});
