// Interrupts through real vfio-pci in the guest: IRQ info, MSI and INTx raised by the edu device, INTx automasking,
// software triggers, per-vector enable/disable on nvme MSI-X, errors, use after close and eventfd leaks.
// Runs under `deno test` and `bun test`; skipped outside the VM (VFIO_TS_IN_VM unset).
//
// edu registers (qemu docs/specs/edu.rst): 0x24 IRQ status, 0x60 raise (ORs into status, fires), 0x64 ack (clears).
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { afterEach, test } from "node:test";
import { ClosedError, OutOfRangeError, UnsupportedError, VfioError } from "../../lib/errors.ts";
import { IrqIndex, irqInfo, irqInfoAll, IrqSet } from "../../lib/irq.ts";
import type { Region } from "../../lib/region.ts";
import type { DeviceFd } from "../../lib/types.ts";

import { guest, openInGuest, releaseDevices, skipIf } from "./guest.ts";

const edu = guest.edu ?? "";
const nvme = guest.nvme ?? "";
const skipEdu = skipIf(guest.edu, "edu", "edu interrupt tests");
const skipNvme = skipIf(guest.nvme, "nvme", "nvme MSI-X tests");
afterEach(releaseDevices); // a failed test must not leave a device open for the next

const IRQ_STATUS = 0x24, IRQ_RAISE = 0x60, IRQ_ACK = 0x64;
const LONG = 3000; // ms: a raised interrupt must arrive well within this, even under TCG
const SHORT = 150; // ms: how long to watch for an interrupt that must NOT arrive

const openFds = (): number => readdirSync("/proc/self/fd").length;

/** An open device with BAR0, memory decoding, bus mastering and INTx on. */
interface Opened extends Disposable {
  dev: DeviceFd;
  bar0: Region;
}

/** Opens a device through the mode's path: type1 or no-IOMMU groups, or the cdev bound to an iommufd. */
function open(address: string): Opened {
  const dev = openInGuest(address, { iommu: guest.mode === "iommufd" ? "iommufd" : "auto" });
  try {
    dev.config.enableMemory();
    dev.config.enableBusMaster();
    dev.config.enableIntx();
    return { dev, bar0: dev.bar(0), [Symbol.dispose]: (): void => dev.close() };
  } catch (e) {
    dev.close();
    throw e;
  }
}

function ackAll(bar0: Region): void {
  const status = bar0.read32(IRQ_STATUS);
  if (status !== 0) bar0.write32(IRQ_ACK, status);
}

test("IRQ info of every index (edu: INTx and MSI, no MSI-X)", { skip: skipEdu }, () => {
  using o = open(edu);
  const all = irqInfoAll(o.dev);
  assert.deepEqual(all.map((i) => i.name), ["INTx", "MSI", "MSI-X", "ERR", "REQ"]);
  const [intx, msi, msix] = all;
  assert.equal(intx.count, 1);
  assert.ok(intx.eventfd && intx.maskable && intx.automasked, `INTx flags 0x${intx.flags.toString(16)}`);
  assert.ok(msi.count >= 1, `MSI count ${msi.count}`);
  assert.ok(msi.eventfd && !msi.maskable && !msi.automasked, `MSI flags 0x${msi.flags.toString(16)}`);
  assert.equal(msix.count, 0);
  assert.equal(irqInfo(o.dev, IrqIndex.REQ).count, 1);
  console.log(all.map((i) => `${i.name}=${i.count}/0x${i.flags.toString(16)}`).join(" "));
});

test("edu MSI raised through 0x60 is awaited asynchronously and counted", { skip: skipEdu }, async () => {
  using o = open(edu);
  ackAll(o.bar0);
  using msi = IrqSet.enable(o.dev, IrqIndex.MSI, { count: 1 });
  assert.equal(msi.poll(0), 0);

  const pending = msi.wait(0, { timeoutMs: LONG });
  o.bar0.write32(IRQ_RAISE, 0x1);
  assert.equal(await pending, 1);
  assert.equal(o.bar0.read32(IRQ_STATUS) & 1, 1, "status shows the raised bit");
  ackAll(o.bar0);

  // Three raises before anyone waits: the eventfd counts them all.
  for (let i = 0; i < 3; i++) o.bar0.write32(IRQ_RAISE, 0x2);
  let total = 0;
  while (total < 3) {
    const n = await msi.wait(0, { timeoutMs: LONG });
    assert.ok(n > 0, "interrupts arrive");
    total += n;
  }
  assert.equal(total, 3);
  ackAll(o.bar0);
  assert.equal(await msi.wait(0, { timeoutMs: SHORT }), 0, "nothing more");

  // The iterator form.
  setTimeout(() => o.bar0.write32(IRQ_RAISE, 0x4), 20);
  for await (const n of msi.events(0)) {
    assert.equal(n, 1);
    break;
  }
  ackAll(o.bar0);

  // Busy-polling sees an interrupt too.
  o.bar0.write32(IRQ_RAISE, 0x8);
  let spun = 0;
  for (let i = 0; i < 100 && spun === 0; i++) spun = msi.spin(0, { maxSpins: 10_000 });
  assert.equal(spun, 1);
  ackAll(o.bar0);
});

test("edu INTx stays masked after an interrupt until unmask()", { skip: skipEdu }, async () => {
  using o = open(edu);
  ackAll(o.bar0);
  using intx = IrqSet.enable(o.dev, IrqIndex.INTX);
  assert.ok(intx.info.automasked);

  o.bar0.write32(IRQ_RAISE, 0x1);
  assert.equal(await intx.wait({ timeoutMs: LONG }), 1, "first INTx arrives");

  // Still masked by the kernel: a second raise (even after the line drops and rises again) is not delivered.
  ackAll(o.bar0);
  o.bar0.write32(IRQ_RAISE, 0x1);
  assert.equal(await intx.wait({ timeoutMs: SHORT }), 0, "masked: the second raise is not delivered");

  // Ack so the level-triggered line drops, then unmask: nothing is pending any more.
  ackAll(o.bar0);
  intx.unmask();
  assert.equal(await intx.wait({ timeoutMs: SHORT }), 0, "nothing pending after ack + unmask");

  o.bar0.write32(IRQ_RAISE, 0x1);
  assert.equal(await intx.wait({ timeoutMs: LONG }), 1, "delivered again after ack + unmask");
  ackAll(o.bar0);

  // autoUnmask: each wait unmasks first, so wait → ack → wait keeps working.
  for (let i = 0; i < 3; i++) {
    o.bar0.write32(IRQ_RAISE, 0x1);
    assert.equal(await intx.wait({ timeoutMs: LONG, autoUnmask: true }), 1, `auto-unmasked round ${i}`);
    ackAll(o.bar0);
  }

  // Unmasking with the line still asserted fires again at once (level-triggered).
  o.bar0.write32(IRQ_RAISE, 0x1);
  intx.unmask();
  assert.equal(await intx.wait({ timeoutMs: LONG }), 1);
  intx.unmask();
  assert.equal(await intx.wait({ timeoutMs: LONG }), 1, "still asserted: unmask re-delivers");
  ackAll(o.bar0);
  intx.unmask();
  assert.equal(await intx.wait({ timeoutMs: SHORT }), 0);

  // mask() holds interrupts back.
  intx.mask();
  o.bar0.write32(IRQ_RAISE, 0x1);
  assert.equal(await intx.wait({ timeoutMs: SHORT }), 0, "masked by mask()");
  intx.unmask();
  assert.equal(await intx.wait({ timeoutMs: LONG }), 1, "delivered on unmask");
  ackAll(o.bar0);
});

test("software trigger() delivers on INTx and MSI", { skip: skipEdu }, async () => {
  using o = open(edu);
  for (const index of [IrqIndex.INTX, IrqIndex.MSI]) {
    using set = IrqSet.enable(o.dev, index, { count: 1 });
    set.trigger(0);
    assert.equal(await set.wait(0, { timeoutMs: LONG }), 1, `${set.name} software trigger`);
    set.trigger(0);
    set.trigger(0);
    assert.equal(await set.wait(0, { timeoutMs: LONG }), 2, `${set.name} two triggers counted`);
  }
});

test("edu: missing index, too many vectors, two indexes at once, masking MSI", { skip: skipEdu }, async () => {
  using o = open(edu);
  assert.throws(() => IrqSet.enable(o.dev, IrqIndex.MSIX), (e: unknown) => {
    assert.ok(e instanceof UnsupportedError);
    assert.match(e.message, /no MSI-X/);
    assert.match(e.message, /INTx \(1 vector\)/, "names what the device has");
    return true;
  });
  const msiCount = irqInfo(o.dev, IrqIndex.MSI).count;
  assert.throws(() => IrqSet.enable(o.dev, IrqIndex.MSI, { count: msiCount + 1 }), (e: unknown) => {
    assert.ok(e instanceof UnsupportedError);
    assert.match(e.message, new RegExp(`has ${msiCount} MSI vector`));
    return true;
  });
  assert.throws(() => IrqSet.enable(o.dev, IrqIndex.MSI, { count: 0 }), OutOfRangeError);
  assert.throws(() => IrqSet.enable(o.dev, 7 as IrqIndex), OutOfRangeError);

  using msi = IrqSet.enable(o.dev, IrqIndex.MSI, { count: 1 });
  assert.throws(() => IrqSet.enable(o.dev, IrqIndex.INTX), VfioError, "INTx while MSI is on");
  assert.throws(() => msi.mask(0), UnsupportedError);
  await assert.rejects(msi.wait(1), OutOfRangeError);
  msi.close();
  // After closing MSI, INTx can be enabled.
  IrqSet.enable(o.dev, IrqIndex.INTX).close();
});

test("waitSync sleeps on the calling thread until edu's factorial interrupt wakes it", { skip: skipEdu }, () => {
  // edu 0x08: factorial input (writing it starts the computation in QEMU's edu thread); 0x20: status, bit 0x01
  // computing, bit 0x80 raise interrupt 0x1 when done. 30 M multiplications take tens of ms: the waiter sleeps first.
  using o = open(edu);
  ackAll(o.bar0);
  using msi = IrqSet.enable(o.dev, IrqIndex.MSI, { count: 1 });
  o.bar0.write32(0x20, 0x80);
  const before = msi.waitCounts(0);
  o.bar0.write32(0x08, 30_000_000);
  assert.equal(msi.waitSync(0, { timeoutMs: LONG }), 1);
  assert.equal(o.bar0.read32(0x20) & 0x1, 0, "the factorial is done");
  assert.equal(o.bar0.read32(IRQ_STATUS) & 0x1, 0x1, "the factorial's interrupt bit");
  const after = msi.waitCounts(0);
  assert.deepEqual([after.slept - before.slept, after.immediate - before.immediate], [1, 0], "it slept, then woke");
  ackAll(o.bar0);
  o.bar0.write32(0x20, 0);
  assert.equal(msi.waitSync({ timeoutMs: SHORT }), 0, "nothing more");
  o.bar0.write32(IRQ_RAISE, 0x2);
  assert.equal(msi.waitSync(0, { timeoutMs: LONG }), 1, "an interrupt already pending is read at once");
  ackAll(o.bar0);
  // Without a timeout: a blocking read of the eventfd, which the factorial's MSI ends.
  o.bar0.write32(0x20, 0x80);
  const slept = msi.waitCounts(0).slept;
  o.bar0.write32(0x08, 30_000_000);
  assert.equal(msi.waitSync(0), 1, "woken by the factorial's interrupt");
  assert.equal(msi.waitCounts(0).slept, slept + 1, "it slept in the read");
  ackAll(o.bar0);
  o.bar0.write32(0x20, 0);
  assert.equal(msi.waitSync({ timeoutMs: SHORT }), 0, "non-blocking again: a timed wait times out");
});

test("use after close, close while waiting, and no leaked eventfds", { skip: skipEdu }, async () => {
  using o = open(edu);
  const before = openFds();
  const msi = IrqSet.enable(o.dev, IrqIndex.MSI, { count: 1 });
  assert.equal(openFds(), before + 1, "one eventfd per vector");
  const pending = msi.wait(0);
  await assert.rejects(msi.wait(0, { timeoutMs: 10 }), VfioError, "one wait per vector at a time");
  await new Promise((r) => setTimeout(r, 20));
  const t0 = performance.now();
  msi.close();
  msi.close(); // idempotent
  await assert.rejects(pending, ClosedError);
  assert.ok(performance.now() - t0 < 1000, "the pending wait was woken promptly");
  assert.equal(openFds(), before, "eventfds closed");

  assert.throws(() => msi.trigger(0), ClosedError);
  assert.throws(() => msi.poll(0), ClosedError);
  assert.throws(() => msi.spin(0, { maxSpins: 1 }), ClosedError);
  assert.throws(() => msi.disableVector(0), ClosedError);
  await assert.rejects(msi.wait(0, { timeoutMs: 10 }), ClosedError);

  // An iterator ends (no error) when its set is closed.
  const intx = IrqSet.enable(o.dev, IrqIndex.INTX);
  const iterated = (async (): Promise<number> => {
    let n = 0;
    for await (const _ of intx.events()) n++;
    return n;
  })();
  await new Promise((r) => setTimeout(r, 20));
  intx.close();
  assert.equal(await iterated, 0);

  // The index really is disabled on close: enabling again works every time, without leaks.
  for (let i = 0; i < 5; i++) IrqSet.enable(o.dev, i % 2 ? IrqIndex.INTX : IrqIndex.MSI).close();
  assert.equal(openFds(), before, "no leak over enable/close cycles");
});

test("closing the device first still lets the set close cleanly", { skip: skipEdu }, () => {
  const before = openFds();
  using o = open(edu); // disposed below on purpose (idempotent); `using` covers a failure before that
  const msi = IrqSet.enable(o.dev, IrqIndex.MSI, { count: 1 });
  o[Symbol.dispose]();
  msi.close();
  assert.equal(openFds(), before);
});

test("nvme MSI-X: several vectors, a trigger of vector 2 arrives on vector 2 only", { skip: skipNvme }, async () => {
  using o = open(nvme);
  const info = irqInfo(o.dev, IrqIndex.MSIX);
  assert.ok(info.count >= 4, `MSI-X count ${info.count}`);
  console.log(`nvme MSI-X: ${info.count} vectors, flags 0x${info.flags.toString(16)}`);
  const before = openFds();
  using msix = IrqSet.enable(o.dev, IrqIndex.MSIX, { count: 4 });
  assert.equal(openFds(), before + 4);

  msix.trigger(2);
  assert.equal(await msix.wait(2, { timeoutMs: LONG }), 1);
  for (const v of [0, 1, 3]) assert.equal(msix.poll(v), 0, `vector ${v} stays quiet`);

  // A disabled vector does not signal; the others keep working; re-enabled it signals again.
  msix.disableVector(2);
  assert.equal(msix.isEnabled(2), false);
  msix.trigger(2);
  msix.trigger(3);
  assert.equal(await msix.wait(3, { timeoutMs: LONG }), 1);
  assert.equal(await msix.wait(2, { timeoutMs: SHORT }), 0, "disabled vector 2 is silent");
  msix.enableVector(2);
  msix.trigger(2);
  assert.equal(await msix.wait(2, { timeoutMs: LONG }), 1);

  // Waits on several vectors at once.
  const waits = [0, 1, 2, 3].map((v) => msix.wait(v, { timeoutMs: LONG }));
  msix.trigger(1);
  msix.trigger(0);
  msix.trigger(3);
  msix.trigger(2);
  assert.deepEqual(await Promise.all(waits), [1, 1, 1, 1]);

  msix.close();
  assert.equal(openFds(), before);
});

test("nvme MSI-X from a start vector", { skip: skipNvme }, async () => {
  using o = open(nvme);
  using msix = IrqSet.enable(o.dev, IrqIndex.MSIX, { start: 2, count: 2 });
  assert.throws(() => msix.trigger(1), OutOfRangeError);
  msix.trigger(3);
  assert.equal(await msix.wait(3, { timeoutMs: LONG }), 1);
  assert.equal(msix.poll(2), 0);
});
