// Handing device memory to workers (lib/shared_window.ts) on a real device in the guest: two workers, each given
// edu's BAR0 and its own window of one DMA buffer (two "queues" of one device), fill their window, program edu's DMA
// engine through the shared BAR mapping with their window's bus addresses, and see the device's copy. Runs under
// `deno test` and `bun test`; skipped outside the VM.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { OutOfRangeError } from "../../lib/errors.ts";
import { openSharedWindow, shareWindow } from "../../lib/shared_window.ts";
import { guest, openInGuest, releaseDevices, skipIf } from "./guest.ts";

const edu = guest.edu ?? "";
const skipEdu = skipIf(guest.edu, "edu", "shared-window worker tests");
afterEach(releaseDevices);

type Reply = { id: number; ident: number; same: number; half: number } | { error: string };

/** A worker of fixtures/queue_worker.ts, once it has loaded (messages posted earlier can be lost). */
function start(): Promise<Worker> {
  const worker = new Worker(new URL("./fixtures/queue_worker.ts", import.meta.url).href, { type: "module" });
  return new Promise((resolve, reject) => {
    worker.onmessage = () => resolve(worker);
    worker.onerror = (e) => reject(new Error(`worker failed to load: ${(e as ErrorEvent).message}`));
  });
}

function run(worker: Worker, job: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<Reply>) => resolve(e.data);
    worker.onerror = (e) => reject(new Error(`worker failed: ${(e as ErrorEvent).message}`));
    worker.postMessage(job);
  });
}

test(
  "two workers drive two DMA windows of one edu through shared BAR and buffer memory",
  { skip: skipEdu },
  async () => {
    using dev = openInGuest(edu, { iommu: guest.mode === "iommufd" ? "iommufd" : "auto" });
    dev.config.enableMemory();
    dev.config.enableBusMaster();
    const bar0 = dev.bar(0);
    using buf = dev.allocDma(2 * 4096, { hugepages: "never" });
    buf.fill(0);
    const workers = await Promise.all([start(), start()]);
    try {
      const bar = shareWindow(bar0);
      assert.equal(bar.busAddress, null);
      // One at a time: edu has one DMA engine, which two workers must not program at once.
      for (const id of [0, 1]) {
        const queue = shareWindow(buf, id * 4096, 4096);
        assert.equal(queue.busAddress, buf.busAddress(id * 4096));
        const r = await run(workers[id], { id, bar, queue, eduBuffer: 0x40000 + id * 2048 });
        if ("error" in r) assert.fail(r.error);
        assert.equal(r.ident >>> 0, bar0.read32(0) >>> 0, "the worker reads edu's identification register");
        assert.equal(r.same, r.half, `worker ${id}: the device copied its window`);
      }
      // The owner sees both workers' writes in its own view, each queue with its own pattern.
      for (const id of [0, 1]) {
        for (const i of [0, 1, 2047]) assert.equal(buf.u8[id * 4096 + i], (i * 13 + id * 101) & 0xff);
      }
    } finally {
      for (const w of workers) w.terminate();
    }
    assert.throws(() => shareWindow(buf, 4, 8), OutOfRangeError, "misaligned");
    assert.throws(() => shareWindow(buf, 0, 3 * 4096), OutOfRangeError, "past the end");
    assert.throws(() => openSharedWindow({ kind: "nope" } as never), OutOfRangeError);
  },
);
