// openDevice end to end on QEMU's edu in the guest: the IOMMU path it picks per rig mode, BAR0 registers, a DMA
// round trip through Device.allocDma (2 KiB: QEMU 7.2 edu rejects a DMA of its whole 4 KiB buffer as out of bounds), an MSI awaited asynchronously, and clean release of every fd and mapping.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { afterEach, describe, it } from "node:test";
import {
  ClosedError,
  GroupNotViableError,
  InvalidAddressError,
  NoiommuError,
  NotBoundError,
  OutOfRangeError,
  UnsupportedError,
} from "../../lib/errors.ts";
import { IrqIndex } from "../../lib/irq.ts";
import { openDevice, type OpenDeviceOptions } from "../../lib/open.ts";
import { guest, openInGuest, releaseDevices, skipBecause, skipIf, skipUnless } from "./guest.ts";

const { inVm, mode } = guest;
const edu = guest.edu ?? "";
const noiommu = mode === "noiommu";
const expectedBackend = mode === "noiommu" ? "noiommu" : mode === "iommu" ? "type1" : "iommufd";

const EDU_ID = 0x00, EDU_LIVENESS = 0x04, EDU_FACTORIAL = 0x08, EDU_STATUS = 0x20;
const EDU_IRQ_STATUS = 0x24, EDU_IRQ_RAISE = 0x60, EDU_IRQ_ACK = 0x64;
const EDU_DMA_SRC = 0x80, EDU_DMA_DST = 0x88, EDU_DMA_COUNT = 0x90, EDU_DMA_CMD = 0x98;
const EDU_BUFFER = 0x40000n;
const DMA_START = 1, DMA_TO_RAM = 2;

function fdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

/** Whether any mapping of this process starts at `address` (the runtime's own heap and thread stacks come and go). */
function mapped(address: bigint): boolean {
  const hex = address.toString(16);
  return readFileSync("/proc/self/maps", "utf8").split("\n").some((l) => l.split("-")[0] === hex);
}

function open(): ReturnType<typeof openDevice> {
  return openInGuest(edu);
}

afterEach(releaseDevices); // a failed test must not leave a device open for the next

describe("openDevice on edu", { skip: skipIf(guest.edu, "edu", "openDevice on edu") }, () => {
  it("picks the IOMMU path of the rig's mode", () => {
    using dev = open();
    assert.equal(dev.iommu, expectedBackend);
    const info = dev.info();
    assert.equal(info.pci, true);
    assert.equal(info.numRegions >= 9, true);
    assert.equal(info.numIrqs >= 5, true);
  });

  const optIn = "refuses a no-IOMMU group without the opt-in";
  it(optIn, { skip: inVm && skipBecause(!noiommu && `no no-IOMMU group in ${mode} mode`, optIn) }, () => {
    assert.throws(() => openDevice(edu), NoiommuError);
  });

  it("reads the ID register and the liveness register through BAR0", () => {
    using dev = open();
    const bar0 = dev.bar(0);
    assert.equal(bar0.read32(EDU_ID), 0x010000ed);
    bar0.write32(EDU_LIVENESS, 0x12345678);
    assert.equal(bar0.read32(EDU_LIVENESS), ~0x12345678 >>> 0);
    assert.throws(() => bar0.read32(bar0.size), OutOfRangeError);
    assert.throws(() => dev.bar(6), UnsupportedError);
  });

  it("computes a factorial", async () => {
    using dev = open();
    const bar0 = dev.bar(0);
    bar0.write32(EDU_FACTORIAL, 6);
    for (let i = 0; i < 1000 && (bar0.read32(EDU_STATUS) & 1); i++) await new Promise((r) => setTimeout(r, 1));
    assert.equal(bar0.read32(EDU_FACTORIAL), 720);
  });

  it("DMA round trip RAM -> device -> RAM through Device.allocDma", async () => {
    using dev = open();
    dev.config.enableMemory();
    dev.config.enableBusMaster();
    const bar0 = dev.bar(0);
    const buf = dev.allocDma(8192, { hugepages: "never" });
    for (let i = 0; i < 2048; i++) buf.u8[i] = (i * 7) & 0xff;
    const run = async (src: bigint, dst: bigint, toRam: boolean): Promise<void> => {
      bar0.write64(EDU_DMA_SRC, src);
      bar0.write64(EDU_DMA_DST, dst);
      bar0.write64(EDU_DMA_COUNT, 2048n);
      bar0.write64(EDU_DMA_CMD, BigInt(DMA_START | (toRam ? DMA_TO_RAM : 0)));
      for (let i = 0; i < 2000 && (bar0.read64(EDU_DMA_CMD) & 1n); i++) await new Promise((r) => setTimeout(r, 1));
      assert.equal(bar0.read64(EDU_DMA_CMD) & 1n, 0n, "DMA finished");
    };
    await run(buf.busAddress(0), EDU_BUFFER, false);
    await run(EDU_BUFFER, buf.busAddress(4096), true);
    for (let i = 0; i < 2048; i++) assert.equal(buf.u8[4096 + i], (i * 7) & 0xff, `byte ${i}`);
  });

  it("an MSI raised by the device is awaited without blocking the event loop", async () => {
    using dev = open();
    dev.config.enableMemory();
    dev.config.enableBusMaster();
    const bar0 = dev.bar(0);
    const irqs = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const wait = irqs.wait(0, { timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 20));
    bar0.write32(EDU_IRQ_RAISE, 0x1);
    const n = await wait;
    clearInterval(timer);
    assert.equal(n >= 1, true, "interrupt arrived");
    assert.equal(ticks > 0, true, "the event loop kept running");
    assert.equal(bar0.read32(EDU_IRQ_STATUS) & 1, 1);
    bar0.write32(EDU_IRQ_ACK, 0x1);
  });

  it("an MSI raised by DMA completion (cmd bit 2) is awaited", async () => {
    using dev = open();
    dev.config.enableMemory();
    dev.config.enableBusMaster();
    const bar0 = dev.bar(0);
    const buf = dev.allocDma(4096, { hugepages: "never" });
    buf.u8.fill(0x5a, 0, 512);
    using irqs = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
    const wait = irqs.wait(0, { timeoutMs: 5000 });
    bar0.write64(EDU_DMA_SRC, buf.busAddress(0));
    bar0.write64(EDU_DMA_DST, EDU_BUFFER);
    bar0.write64(EDU_DMA_COUNT, 512n);
    bar0.write64(EDU_DMA_CMD, BigInt(DMA_START | 4));
    assert.equal((await wait) >= 1, true, "completion interrupt");
    assert.equal(bar0.read64(EDU_DMA_CMD) & 1n, 0n, "the DMA is done when the interrupt arrives");
    assert.equal(bar0.read32(EDU_IRQ_STATUS) & 0x100, 0x100, "edu reports the DMA interrupt");
    bar0.write32(EDU_IRQ_ACK, 0x100);
  });

  it("close releases fds and mappings, is idempotent, and use after close is a ClosedError", () => {
    const fds = fdCount();
    using dev = open(); // closed below on purpose (idempotent); `using` covers a failure before that
    const bar0 = dev.bar(0);
    const buf = dev.allocDma(4096, { hugepages: "never" });
    const barAt = bar0.unsafeAddress, bufAt = buf.vaddr;
    assert.ok(mapped(barAt) && mapped(bufAt), "BAR0 and the DMA buffer are mapped while open");
    dev.enableIrqs(IrqIndex.MSI, { count: 1 });
    dev.close();
    dev.close();
    assert.throws(() => bar0.read32(0), ClosedError);
    assert.throws(() => dev.info(), ClosedError);
    assert.throws(() => dev.bar(0), ClosedError);
    assert.equal(fdCount(), fds, "no fd leaked");
    assert.equal(mapped(barAt), false, "BAR0 unmapped");
    assert.equal(mapped(bufAt), false, "DMA buffer unmapped");
    using again = open(); // the group, container and device can be opened again
    assert.equal(again.bar(0).read32(EDU_ID), 0x010000ed);
  });

  it("what the user closes is released at once and forgotten by the device; the device closes the rest", () => {
    const fds = fdCount();
    using dev = open();
    const kept = dev.allocDma(4096, { hugepages: "never" });
    const keptAt = kept.vaddr;
    for (let i = 0; i < 200; i++) {
      const buf = dev.allocDma(4096, { hugepages: "never" });
      const at = buf.vaddr;
      buf.close();
      assert.equal(mapped(at), false, "a buffer the user closes is unmapped at once");
    }
    const irqs = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
    irqs.close();
    assert.equal(irqs.closed, true);
    using again = dev.enableIrqs(IrqIndex.MSI, { count: 1 }); // the index is free again after the user's close
    dev.close(); // closes `kept` and `again`, nothing twice, and reports no error
    assert.equal(again.closed, true);
    assert.equal(mapped(keptAt), false, "the buffer the user kept is unmapped with the device");
    assert.equal(fdCount(), fds, "no fd leaked");
  });

  it("bad input gets typed errors", () => {
    assert.throws(() => openDevice("00:zz.0"), InvalidAddressError);
    assert.throws(() => openDevice("0000:00:1f.6"), InvalidAddressError);
    const onKernel = guest.kernelDevices[0];
    if (onKernel) assert.throws(() => openDevice(onKernel), NotBoundError);
    // No type1 for a no-IOMMU group; "noiommu" is not a path to choose anywhere ({ noiommu: true } asks for it).
    const wrongPath = (noiommu ? { iommu: "type1" } : { iommu: "noiommu" }) as unknown as OpenDeviceOptions;
    assert.throws(() => openDevice(edu, wrongPath), noiommu ? UnsupportedError : NoiommuError);
  });

  it("a device can only be opened once at a time", () => {
    using dev = open();
    assert.throws(() => open(), /already open/);
    assert.equal(dev.bar(0).read32(EDU_ID), 0x010000ed);
  });
});

describe("a group that is not viable", {
  skip: skipUnless(noiommu && "no IOMMU groups in noiommu mode", "a group that is not viable"),
}, () => {
  // The rig puts a second edu and an e1000e left on its kernel driver behind one PCI bridge: one IOMMU group.
  const bridged = guest.devices.edu.find((a) => a.startsWith("0000:01:"));
  const blocker = guest.kernelDevices.find((a) => a.startsWith("0000:01:"));

  const refused = "is refused on every path with the other member and its driver named";
  it(
    refused,
    { skip: inVm && !noiommu && skipBecause(!bridged && "no edu behind a bridge in the guest", refused) },
    () => {
      for (const iommu of ["auto", "type1", ...(mode === "iommufd" ? ["iommufd", "iommufd-compat"] as const : [])]) {
        assert.throws(() => openDevice(bridged!, { iommu: iommu as "auto" }), (e: unknown) => {
          assert.ok(e instanceof GroupNotViableError, `${iommu}: ${e}`);
          assert.deepEqual(e.blockers.map((m) => m.address), [blocker]);
          assert.match(e.message, new RegExp(`${blocker!.replaceAll(".", "\\.")} \\(e1000e\\)`));
          assert.match(e.message, /vfio bind/);
          return true;
        });
      }
    },
  );
});

describe("reset", { skip: skipUnless(false, "reset") }, () => {
  it("edu has no reset method: a clear UnsupportedError", () => {
    using dev = open();
    assert.equal(dev.info().resetSupported, false);
    assert.throws(() => dev.reset(), UnsupportedError);
  });

  it("devices that offer a reset are reset and keep working", () => {
    const { nvme, e1000e, virtioNet } = guest.devices;
    const candidates = [...nvme, ...e1000e, ...virtioNet];
    let resets = 0;
    for (const address of candidates) {
      using dev = openInGuest(address);
      if (!dev.info().resetSupported) continue;
      const vendor = dev.config.vendorId;
      dev.reset();
      resets++;
      assert.equal(dev.config.vendorId, vendor, `${address} answers after reset`);
    }
    assert.ok(resets > 0, `at least one of ${candidates.join(", ")} supports reset`);
  });
});
