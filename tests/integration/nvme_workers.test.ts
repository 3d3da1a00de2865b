/**
 * Handing a device's queues to workers (lib/shared_window.ts with the NVMe layer in examples/nvme/), on the rig's
 * nvme in the guest. The owner enables the controller, creates two I/O queue pairs for workers
 * (`createSharedIoQueuePair`) and posts each worker windows of BAR0, of its queue memory and of its own data buffer.
 * The two workers (fixtures/nvme_queue_worker.ts) drive their queues at the same time: each writes its own pattern to
 * its own LBA range with up to 63 commands in flight, reads it back and compares. This proves that
 * - a worker can drive a queue pair of a device from shared windows alone: doorbells through the BAR window, PRP
 *   entries from the data window's bus addresses (per page when the buffer is not contiguous, as without an IOMMU),
 *   completions read from the queue window;
 * - two workers really drive two queues of one controller concurrently: their I/O intervals overlap, and the
 *   owner, through a queue of its own, finds both workers' patterns on the medium;
 * - bad input to the worker-side API is refused with typed errors, and everything is released afterwards (queues
 *   deleted, memory freed, device closed).
 * Runs under `deno test` and `bun test`; skipped outside the VM.
 * @module
 */
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { Controller, findMismatch, Namespace, PAGE, queuePairBytes } from "../../examples/nvme/mod.ts";
import type { Device } from "../../lib/device.ts";
import type { DmaBuffer } from "../../lib/dma/buffer.ts";
import { OutOfRangeError } from "../../lib/errors.ts";
import { openSharedWindow, shareWindow, viewSharedWindow, windowBusAddress } from "../../lib/shared_window.ts";
import type { WorkerJob, WorkerReport } from "./fixtures/nvme_queue_worker.ts";
import { guest, openInGuest, releaseDevices, skipIf } from "./guest.ts";

afterEach(releaseDevices);

const COMMANDS = 64, BLOCKS_PER_COMMAND = 8; // 64 writes of 4 KiB (then 64 reads) per worker
const RANGES = [100_000, 110_000]; // each worker's first LBA: past the image's patterned first MiB, disjoint

/** A worker of fixtures/nvme_queue_worker.ts, once it has loaded (messages posted earlier can be lost). */
function start(): Promise<Worker> {
  const worker = new Worker(new URL("./fixtures/nvme_queue_worker.ts", import.meta.url).href, { type: "module" });
  return new Promise((resolve, reject) => {
    worker.onmessage = () => resolve(worker);
    worker.onerror = (e) => reject(new Error(`worker failed to load: ${(e as ErrorEvent).message}`));
  });
}

/**
 * A DMA buffer of base pages allocated right after every other page of as many single-page buffers was freed, so
 * that its pages are scattered without an IOMMU (with one, its IOVAs are one run anyway). Physically contiguous
 * anyway by chance (the kernel's choice), it is held and another one tried.
 */
function scatteredDma(dev: Device, bytes: number): DmaBuffer {
  using stack = new DisposableStack(); // every page held while trying: the next try gets other ones
  for (let attempt = 0; attempt < 8; attempt++) {
    const pages = Array.from(
      { length: (2 * bytes) / PAGE },
      () => stack.use(dev.allocDma(PAGE, { hugepages: "never" })),
    );
    for (const [i, p] of pages.entries()) if (i % 2 === 0) p.close();
    const buf = dev.allocDma(bytes, { hugepages: "never" });
    if (!buf.contiguous || guest.mode !== "noiommu") return buf;
    stack.use(buf);
  }
  throw new Error(`8 buffers of ${bytes} bytes in a row were physically contiguous`);
}

function run(worker: Worker, job: WorkerJob): Promise<WorkerReport> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<WorkerReport | { error: string }>) => {
      if ("error" in e.data) reject(new Error(`worker ${job.id}: ${e.data.error}`));
      else resolve(e.data);
    };
    worker.onerror = (e) => reject(new Error(`worker ${job.id} failed: ${(e as ErrorEvent).message}`));
    worker.postMessage(job);
  });
}

test(
  "two workers drive two I/O queue pairs of one NVMe controller at once, from shared windows",
  { skip: skipIf(guest.nvme, "nvme on vfio-pci", "nvme workers"), timeout: 300_000 },
  async () => {
    using dev = openInGuest(guest.nvme!);
    using ctrl = await Controller.enable(dev);
    await ctrl.identifyController();
    const ns = new Namespace(ctrl, await ctrl.identifyNamespace(1));
    const granted = await ctrl.setNumberOfQueues(3);
    assert.ok(granted.submission >= 3 && granted.completion >= 3, `3 I/O queue pairs granted: ${granted.submission}`);
    const bytes = COMMANDS * BLOCKS_PER_COMMAND * ns.blockSize;
    // Scattered base pages: without an IOMMU each 4 KiB page has its own physical address, which the worker must
    // look up in its window.
    using data0 = scatteredDma(dev, bytes);
    using data1 = scatteredDma(dev, bytes);
    const data = [data0, data1];
    if (guest.mode === "noiommu") assert.ok(!data0.contiguous && !data1.contiguous, "scattered without an IOMMU");
    const shared = [await ctrl.createSharedIoQueuePair({ id: 1 }), await ctrl.createSharedIoQueuePair({ id: 2 })];
    // at least the queues' pages: on a 2 MiB hugepage when one is free (as after other tests of the suite)
    assert.ok(shared[0].memory.size >= queuePairBytes(ctrl.depth), `${shared[0].memory.size} bytes of queue memory`);
    assert.ok(ctrl.depth >= 8, `queue depth ${ctrl.depth}`);

    const bar = shareWindow(ctrl.bar0);
    const windows = data.map((d) => shareWindow(d));
    for (const [i, w] of windows.entries()) {
      assert.equal(w.pageBusAddresses === null, data[i].contiguous, "per-page bus addresses exactly when needed");
      assert.equal(w.pageSize, data[i].pageSize);
      for (let at = 0; at < bytes; at += PAGE) {
        assert.equal(windowBusAddress(w, at + 12), data[i].busAddress(at + 12), `bus address of byte ${at + 12}`);
      }
      const mid = shareWindow(data[i], PAGE + 8, 2 * PAGE); // a window not starting on a page
      assert.equal(windowBusAddress(mid, PAGE - 8), data[i].busAddress(2 * PAGE));
      assert.equal(windowBusAddress(mid, 2 * PAGE - 1), data[i].busAddress(3 * PAGE + 7));
    }

    const seeds = RANGES.map((_, i) => ((Math.random() * 0x7fffffff) ^ (i << 28)) >>> 0);
    const barrier = new SharedArrayBuffer(4);
    const workers = await Promise.all([start(), start()]);
    let reports: WorkerReport[];
    try {
      reports = await Promise.all(workers.map((w, id) =>
        run(w, {
          id,
          bar,
          queue: shareWindow(shared[id].memory),
          data: windows[id],
          spec: shared[id].spec,
          nsid: ns.info.nsid,
          lba: RANGES[id],
          blockSize: ns.blockSize,
          commands: COMMANDS,
          blocksPerCommand: BLOCKS_PER_COMMAND,
          seed: seeds[id],
          barrier,
        })
      ));
    } finally {
      for (const w of workers) w.terminate();
    }
    for (const r of reports) {
      assert.equal(r.writes, COMMANDS, `worker ${r.id}: writes completed`);
      assert.equal(r.reads, COMMANDS, `worker ${r.id}: reads completed`);
      assert.ok(r.peakInFlight >= 8, `worker ${r.id}: ${r.peakInFlight} commands in flight at once`);
      assert.equal(r.mismatch, -1, `worker ${r.id}: read back what it wrote`);
    }
    const [a, b] = reports;
    assert.ok(
      a.start < b.end && b.start < a.end,
      `the workers' I/O overlapped: [${a.start.toFixed(1)}, ${a.end.toFixed(1)}] and [${b.start.toFixed(1)}, ` +
        `${b.end.toFixed(1)}]`,
    );
    console.log(
      `nvme workers: ${
        reports.map((r) =>
          `${r.writes}+${r.reads} commands, ${r.peakInFlight} in flight, ` +
          `${(r.end - r.start).toFixed(0)} ms`
        ).join("; ")
      }; overlap ${
        (Math.min(a.end, b.end) - Math.max(a.start, b.start)).toFixed(0)
      } ms (${guest.mode}, ${guest.runtime}, data ${data0.contiguous ? "contiguous" : "per page"})`,
    );

    // The device did both workers' I/O: the owner reads both ranges through its own queue.
    for (const shared1 of shared) await ctrl.deleteSharedIoQueuePair(shared1);
    const own = await ctrl.createIoQueuePair({ id: 3 });
    using check = dev.allocDma(bytes, { hugepages: "never" });
    for (const [id, lba] of RANGES.entries()) {
      check.fill(0);
      await ns.read(own, check, lba, COMMANDS * BLOCKS_PER_COMMAND);
      assert.equal(findMismatch(check.u32, lba * ns.blockSize, seeds[id]), -1, `worker ${id}'s pattern on the medium`);
    }
    await ctrl.deleteIoQueuePair(own);
    await assert.rejects(ctrl.deleteSharedIoQueuePair(shared[0]), /not one of this controller's/);
    assert.ok(shared.every((s) => s.memory.closed), "deleting a shared queue pair frees its memory");

    // Bad input to the worker-side API.
    const w = windows[0];
    assert.throws(() => openSharedWindow({ kind: "nope" } as never), OutOfRangeError);
    assert.throws(() => openSharedWindow(null as never), OutOfRangeError);
    assert.throws(
      () => windowBusAddress(bar, 0),
      (e) => e instanceof OutOfRangeError && /no bus addresses/.test(e.message),
    );
    assert.throws(() => windowBusAddress(w, bytes), (e) => e instanceof OutOfRangeError && /outside/.test(e.message));
    assert.throws(() => windowBusAddress(w, -1), OutOfRangeError);
    assert.throws(() => windowBusAddress(w, 0.5), OutOfRangeError);
    assert.throws(() => windowBusAddress({ ...w, kind: "other" } as never, 0), OutOfRangeError);
    const view = viewSharedWindow(w);
    assert.throws(() => view.read32(bytes), OutOfRangeError);
    assert.throws(() => view.write32(2, 0), OutOfRangeError);
    assert.throws(() => view.write32(0, 2 ** 32), OutOfRangeError);
    await ctrl.shutdown();
  },
);
