// The NVMe layer in examples/nvme/ imported as a library, on the rig's nvme (fresh image: the test pattern with seed 0
// in its first MiB, zeros after it): several commands in flight on a polled and on an interrupt-driven queue, one
// command whose data needs a PRP list, a write read back through the other queue, and bad input refused with a typed
// error before anything reaches the controller (or, for what only the controller can judge, a status error after
// which the queue keeps working).
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import {
  type Command,
  command,
  Controller,
  type DataRange,
  fillPattern,
  findMismatch,
  Namespace,
  NvmeCommandError,
  NvmOpcode,
  PAGE,
  type QueuePair,
  ReadWriteCommand,
} from "../../examples/nvme/mod.ts";
import { ClosedError, type Device, IrqIndex, OutOfRangeError, VfioError } from "../../mod.ts";
import { guest, openInGuest, releaseDevices, skipIf } from "./guest.ts";

afterEach(releaseDevices);
const LONG = { timeout: 180_000 };
const PATTERNED_BLOCKS = 2048; // the image's first MiB

interface Rig {
  dev: Device;
  ctrl: Controller;
  ns: Namespace;
  polled: QueuePair;
  irqd: QueuePair;
}

/** Opens the nvme, brings the controller up with a polled and an interrupt-driven I/O queue pair, runs `body`. */
async function withNvme(body: (r: Rig) => Promise<void> | void): Promise<void> {
  using dev = openInGuest(guest.nvme!);
  using irqs = dev.enableIrqs(IrqIndex.MSIX, { count: 2 });
  using ctrl = await Controller.enable(dev);
  await ctrl.identifyController();
  const ns = new Namespace(ctrl, await ctrl.identifyNamespace(1));
  await ctrl.setNumberOfQueues(2);
  const polled = await ctrl.createIoQueuePair({ id: 1 });
  const irqd = await ctrl.createIoQueuePair({ id: 2, irq: { set: irqs, vector: 1 } });
  await body({ dev, ctrl, ns, polled, irqd });
  await ctrl.deleteIoQueuePair(polled);
  await ctrl.deleteIoQueuePair(irqd);
  await ctrl.shutdown();
}

/** A Read of `blocks` blocks from `lba` into `data`. */
function readCommand(ns: Namespace, lba: number, blocks: number, data: DataRange): Command {
  const fields = { opc: NvmOpcode.READ, nsid: ns.info.nsid, slba: BigInt(lba), nlb: blocks - 1 };
  return command(ReadWriteCommand, `read of blocks ${lba}+${blocks}`, fields, data);
}

describe("NVMe layer (examples/nvme/)", { skip: skipIf(guest.nvme, "nvme on vfio-pci", "nvme layer") }, () => {
  it("identifies QEMU's controller and namespace through the named struct fields", LONG, async () => {
    await withNvme(({ ctrl, ns }) => {
      assert.equal(ctrl.cap.DSTRD, 0);
      assert.ok(ctrl.cap.MQES >= 63);
      assert.equal(ns.info.blocks, 0x20000n);
      assert.equal(ns.blockSize, 512);
      assert.equal(ctrl.maxTransferBytes, 512 * 1024); // QEMU's MDTS 7
    });
  });

  for (const which of ["polled", "irqd"] as const) {
    it(`keeps 16 reads in flight on the ${which} queue, each completing into its own slice`, LONG, async () => {
      await withNvme(async (r) => {
        const q = r[which];
        const per = 8; // blocks per command: one 4 KiB page
        using buf = r.dev.allocDma(16 * per * 512, { hugepages: "never" }).fill(0xa5);
        const lbas = Array.from({ length: 16 }, (_, i) => (i * 97) % (PATTERNED_BLOCKS - per)); // scattered
        const pending = lbas.map((lba, i) =>
          q.submit(readCommand(r.ns, lba, per, { buffer: buf, offset: i * per * 512, length: per * 512 }))
        );
        assert.equal(q.inFlight, 16, "all 16 submitted before any completed");
        const done = await Promise.all(pending);
        assert.equal(new Set(done.map((c) => c.cid)).size, 16, "16 distinct command ids");
        assert.equal(q.inFlight, 0);
        lbas.forEach((lba, i) => {
          const words = buf.u32.subarray(i * per * 128, (i + 1) * per * 128);
          assert.equal(findMismatch(words, lba * 512, 0), -1, `slice ${i} holds blocks ${lba}..`);
        });
        if (which === "irqd") assert.ok(q.interrupts > 0, "completions came by interrupt");
      });
    });
  }

  it("moves 64 KiB on scattered 4 KiB pages in one command (a PRP list of 15 entries)", LONG, async () => {
    await withNvme(async ({ dev, ns, polled }) => {
      using buf = dev.allocDma(64 * 1024, { hugepages: "never" });
      assert.equal(ns.commandsFor(128), 1);
      assert.equal(await ns.read(polled, buf, 256, 128), 1);
      assert.equal(findMismatch(buf.u32, 256 * 512, 0), -1);
      // Data starting inside a page: PRP1 with an offset, then a list of the 2 further pages.
      using odd = dev.allocDma(3 * PAGE, { hugepages: "never" });
      await polled.submit(readCommand(ns, 0, 16, { buffer: odd, offset: 512, length: 16 * 512 }));
      assert.equal(findMismatch(odd.u32.subarray(128, 128 + 16 * 128), 0, 0), -1, "data at offset 512 spans 3 pages");
    });
  });

  it("writes a pattern past the image's first MiB, flushes, reads it back on the other queue", LONG, async () => {
    await withNvme(async ({ dev, ns, polled, irqd }) => {
      const lba = 50_000, blocks = 200, seed = 0x1a2b3c4d; // 100 KiB: one command with a PRP list of 24 pages
      using src = dev.allocDma(blocks * 512, { hugepages: "never" });
      using dst = dev.allocDma(blocks * 512, { hugepages: "never" }).fill(0);
      fillPattern(src.u32, lba * 512, seed);
      await ns.write(irqd, src, lba, blocks);
      await ns.flush(irqd);
      await ns.read(polled, dst, lba, blocks);
      assert.equal(findMismatch(dst.u32, lba * 512, seed), -1);
    });
  });

  it("refuses bad input with typed errors; a status error leaves the queue working", LONG, async () => {
    await withNvme(async ({ dev, ctrl, ns, polled }) => {
      using buf = dev.allocDma(PAGE, { hugepages: "never" });
      await assert.rejects(
        ns.read(polled, buf, 131_070, 4),
        (e) => e instanceof OutOfRangeError && /past the namespace end/.test(e.message),
      );
      await assert.rejects(
        ns.read(polled, buf, 0, 16),
        (e) => e instanceof OutOfRangeError && /past the end of the 4096-byte buffer/.test(e.message),
      );
      assert.throws(
        () => polled.submit(readCommand(ns, 0, 1, { buffer: buf, offset: 2, length: 512 })),
        OutOfRangeError,
      );
      assert.throws(
        () => polled.submit(command(ReadWriteCommand, "nlb", { opc: NvmOpcode.READ, nlb: 70_000 })),
        RangeError,
      );
      assert.equal(polled.inFlight, 0, "nothing reached the controller");
      await assert.rejects(ctrl.identifyNamespace(0), VfioError);
      // Namespace 2 does not exist: the controller says so in the completion status.
      const bad = command(ReadWriteCommand, "read of namespace 2", { opc: NvmOpcode.READ, nsid: 2, nlb: 0 }, {
        buffer: buf,
        offset: 0,
        length: 512,
      });
      await assert.rejects(
        polled.submit(bad),
        (e) => e instanceof NvmeCommandError && e.status !== 0 && /read of namespace 2 failed/.test(e.message),
      );
      // More than the queue holds at once.
      const many = Array.from(
        { length: polled.capacity },
        () => polled.submit(readCommand(ns, 0, 1, { buffer: buf, offset: 0, length: 512 })),
      );
      assert.throws(
        () => polled.submit(readCommand(ns, 0, 1, { buffer: buf, offset: 0, length: 512 })),
        /commands in flight/,
      );
      await Promise.all(many);
      assert.equal(await ns.read(polled, buf, 8, 8), 1, "the queue still works");
      assert.equal(findMismatch(buf.u32, 8 * 512, 0), -1);
    });
  });

  it(
    "fails what is in flight with ClosedError when the controller closes, and closes twice quietly",
    LONG,
    async () => {
      using dev = openInGuest(guest.nvme!);
      const ctrl = await Controller.enable(dev);
      await ctrl.setNumberOfQueues(1);
      const q = await ctrl.createIoQueuePair({ id: 1 });
      ctrl.close();
      ctrl.close();
      using buf = dev.allocDma(PAGE);
      assert.throws(() =>
        q.submit(
          command(ReadWriteCommand, "late read", { opc: NvmOpcode.READ, nsid: 1 }, {
            buffer: buf,
            offset: 0,
            length: 512,
          }),
        ), ClosedError);
    },
  );
});
