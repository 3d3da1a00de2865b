// Host-only plumbing of interrupt waiting over plain eventfds (no VFIO): wait, timeout, abort, close-while-waiting,
// the async iterator, busy-polling, and argument checks. Kernel behaviour is covered by tests/integration/irq.test.ts.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { ClosedError, OutOfRangeError, VfioError } from "../../lib/errors.ts";
import { IrqEventFd, type IrqIndex, irqIndexName, irqInfo, IrqSet } from "../../lib/irq.ts";
import type { DeviceFd } from "../../lib/types.ts";

const openFds = (): number => readdirSync("/proc/self/fd").length;
/** One wait that sleeps: starts what stays for the process (Bun's epoll worker) before a test counts fds. */
const startWaitMachinery = async (): Promise<void> => {
  using efd = new IrqEventFd();
  await efd.wait({ timeoutMs: 1 });
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test("notify and poll read and reset the counter", () => {
  using efd = new IrqEventFd();
  assert.equal(efd.poll(), 0);
  efd.notify(3);
  efd.notify();
  assert.equal(efd.poll(), 4);
  assert.equal(efd.poll(), 0);
});

test("wait resolves the count written later, without blocking the event loop", async () => {
  using efd = new IrqEventFd();
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 2);
  setTimeout(() => efd.notify(2), 40);
  const n = await efd.wait({ timeoutMs: 2000 });
  clearInterval(ticker);
  assert.equal(n, 2);
  assert.ok(ticks >= 3, `the event loop ran meanwhile (${ticks} ticks)`);
  assert.equal(efd.poll(), 0);
});

test("wait returns at once when interrupts are already counted", async () => {
  using efd = new IrqEventFd();
  efd.notify(5);
  assert.equal(await efd.wait({ timeoutMs: 0 }), 5);
});

test("wait resolves 0 on timeout, and timeoutMs 0 just looks", async () => {
  using efd = new IrqEventFd();
  const t0 = performance.now();
  assert.equal(await efd.wait({ timeoutMs: 30 }), 0);
  assert.ok(performance.now() - t0 >= 25, "waited about the timeout");
  assert.equal(await efd.wait({ timeoutMs: 0 }), 0);
  efd.notify();
  assert.equal(await efd.wait({ timeoutMs: 30 }), 1);
});

test("closing while a wait is pending rejects it promptly with ClosedError and closes the fd", async () => {
  await startWaitMachinery();
  const before = openFds();
  const efd = new IrqEventFd("test vector");
  const pending = efd.wait();
  assert.equal(efd.waiting, true);
  await sleep(5);
  const t0 = performance.now();
  efd.close();
  efd.close(); // idempotent
  await assert.rejects(pending, ClosedError);
  assert.ok(performance.now() - t0 < 500, "woken promptly");
  assert.equal(openFds(), before, "no eventfd left open");
});

test("use after close throws ClosedError", async () => {
  const efd = new IrqEventFd();
  efd.close();
  assert.equal(efd.closed, true);
  assert.throws(() => efd.fd, ClosedError);
  assert.throws(() => efd.poll(), ClosedError);
  assert.throws(() => efd.spin({ maxSpins: 1 }), ClosedError);
  assert.throws(() => efd.notify(), ClosedError);
  await assert.rejects(efd.wait({ timeoutMs: 10 }), ClosedError);
});

test("abort rejects with the reason and keeps interrupts that arrived for the next wait", async () => {
  using efd = new IrqEventFd();
  const ac = new AbortController();
  const pending = efd.wait({ signal: ac.signal });
  await sleep(5);
  ac.abort(new Error("stop"));
  await assert.rejects(pending, /stop/);
  assert.equal(efd.poll(), 0, "the abort's own wake-up is not counted");

  const ac2 = new AbortController();
  const pending2 = efd.wait({ signal: ac2.signal });
  await sleep(5);
  efd.notify(2);
  ac2.abort(new Error("stop"));
  await assert.rejects(pending2, /stop/);
  assert.equal(efd.poll(), 2, "real interrupts survive the abort");

  await assert.rejects(efd.wait({ signal: AbortSignal.abort(new Error("early")) }), /early/);
});

test("a second concurrent wait on one eventfd is refused", async () => {
  using efd = new IrqEventFd();
  const first = efd.wait({ timeoutMs: 1000 });
  await assert.rejects(efd.wait({ timeoutMs: 10 }), VfioError);
  efd.notify();
  assert.equal(await first, 1);
});

test("events() yields counts and ends when the eventfd is closed", async () => {
  const efd = new IrqEventFd();
  const seen: number[] = [];
  setTimeout(() => efd.notify(1), 10);
  setTimeout(() => efd.notify(3), 40);
  setTimeout(() => efd.close(), 80);
  for await (const n of efd.events()) seen.push(n);
  assert.deepEqual(seen, [1, 3]);
});

test("waitSync returns pending counts at once, times out, and counts fast and slow waits", async () => {
  using efd = new IrqEventFd();
  efd.notify(2);
  assert.equal(efd.waitSync({ timeoutMs: 1000 }), 2);
  efd.notify();
  assert.equal(await efd.wait(), 1);
  assert.deepEqual(efd.waitCounts, { immediate: 2, slept: 0 });
  const t0 = performance.now();
  assert.equal(efd.waitSync({ timeoutMs: 30 }), 0);
  assert.ok(performance.now() - t0 >= 25, "waited about the timeout");
  assert.equal(efd.waitSync({ timeoutMs: 0 }), 0);
  assert.deepEqual(efd.waitCounts, { immediate: 2, slept: 1 });
  assert.throws(() => efd.waitSync({ timeoutMs: -1 }), OutOfRangeError);
  efd.close();
  assert.throws(() => efd.waitSync(), ClosedError);
});

/** The O_NONBLOCK flag of the process's fd `fd`, from /proc/self/fdinfo. */
function nonBlocking(fd: number): boolean {
  const flags = /flags:\s*([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))![1];
  return (parseInt(flags, 8) & 0o4000) !== 0;
}

test("waitSync() with no timeout sleeps in a blocking read until another thread signals, and leaves the fd non-blocking to others", async () => {
  const fdsBefore = openFds();
  using efd = new IrqEventFd();
  const fd = efd.fd;
  const worker = new Worker(new URL("./eventfd_writer_worker.ts", import.meta.url).href, { type: "module" });
  try {
    const message = (): Promise<unknown> => new Promise((resolve) => (worker.onmessage = (e) => resolve(e.data)));
    await message(); // ready
    const done = message();
    worker.postMessage({ fd, delayMs: 50 });
    const t0 = performance.now();
    assert.equal(efd.waitSync(), 1); // this thread is blocked in read(2) until the worker writes
    assert.ok(performance.now() - t0 >= 40, "slept until the worker's write");
    assert.deepEqual(efd.waitCounts, { immediate: 0, slept: 1 });
    await done;
    assert.equal(nonBlocking(fd), false, "blocking between waitSync() calls");
    efd.notify(2);
    assert.equal(efd.waitSync(), 2); // pending: answered at once
    assert.deepEqual(efd.waitCounts, { immediate: 1, slept: 1 });
    assert.equal(efd.poll(), 0); // non-blocking again: returns instead of sleeping
    assert.equal(nonBlocking(fd), true);
    efd.waitSync({ timeoutMs: 0 });
    assert.equal(efd.fd, fd);
    assert.equal(nonBlocking(fd), true, "the fd getter hands it out non-blocking");
  } finally {
    worker.terminate();
    // Bun closes the worker's own fds after terminate() returns: wait for that (until the count is back, or has not
    // moved for 100 ms: Deno keeps some), so that the tests after this one, which count open fds, do not see them
    // close under them.
    for (let n = openFds(), still = performance.now(); n > fdsBefore + 1 && performance.now() - still < 100;) {
      await sleep(5);
      const now = openFds();
      if (now !== n) n = now, still = performance.now();
    }
  }
});

test("spin busy-polls the counter", () => {
  using efd = new IrqEventFd();
  assert.equal(efd.spin({ maxSpins: 100 }), 0);
  efd.notify(7);
  assert.equal(efd.spin({ maxSpins: 100 }), 7);
});

test("bad arguments give typed errors", async () => {
  using efd = new IrqEventFd();
  await assert.rejects(efd.wait({ timeoutMs: -1 }), OutOfRangeError);
  await assert.rejects(efd.wait({ timeoutMs: NaN }), OutOfRangeError);
  assert.throws(() => efd.spin({ maxSpins: 0 }), OutOfRangeError);
  assert.throws(() => efd.notify(0), OutOfRangeError);
  assert.throws(() => efd.notify(1.5), OutOfRangeError);

  const notADevice: DeviceFd = { fd: -1, name: "fake" };
  assert.throws(() => irqInfo(notADevice, 5), OutOfRangeError);
  assert.throws(() => irqInfo(notADevice, -1), OutOfRangeError);
  assert.throws(() => IrqSet.enable(notADevice, 9 as IrqIndex), OutOfRangeError);
  assert.equal(irqIndexName(2), "MSI-X");
  assert.throws(() => irqIndexName(1.5), OutOfRangeError);
});

test("many eventfds open and close without leaking", async () => {
  await startWaitMachinery();
  const before = openFds();
  const efds = Array.from({ length: 16 }, (_, i) => new IrqEventFd(`vector ${i}`));
  const waits = efds.map((e) => e.wait());
  for (const e of efds) e.close();
  const results = await Promise.allSettled(waits);
  assert.ok(results.every((r) => r.status === "rejected" && r.reason instanceof ClosedError));
  assert.equal(openFds(), before);
});

test("more waits than the wait worker's ring holds all resolve, at once and in a row", async () => {
  // Bun hands ready tags over in a ring of 256 (ffi/wait_worker.ts): 300 at once make its worker wait for room;
  // Deno polls each on its thread pool, so fewer there
  const count = "Bun" in globalThis ? 300 : 24;
  const efds = Array.from({ length: count }, (_, i) => new IrqEventFd(`vector ${i}`));
  try {
    const waits = efds.map((e) => e.wait({ timeoutMs: 10_000 }));
    await sleep(50); // every wait registered and asleep
    for (const [i, e] of efds.entries()) e.notify(i + 1);
    assert.deepEqual(await Promise.all(waits), efds.map((_, i) => i + 1));
    // and one at a time, past the ring's wrap
    const e = efds[0];
    for (let round = 0; round < 600; round++) {
      const pending = e.wait({ timeoutMs: 10_000 });
      e.notify();
      assert.equal(await pending, 1);
    }
  } finally {
    for (const e of efds) e.close();
  }
});

test("a process whose last wait timed out exits by itself", async () => {
  // nothing the wait machinery keeps (Bun's worker, its pending Atomics.waitAsync; Deno's pool) holds the process
  const { spawnSync } = await import("node:child_process");
  const { execPath } = await import("node:process");
  const script = `import { IrqEventFd } from ${JSON.stringify(new URL("../../lib/irq.ts", import.meta.url).href)};
const efd = new IrqEventFd();
console.log(await efd.wait({ timeoutMs: 20 }));`;
  const args = "Bun" in globalThis ? ["-e", script] : ["eval", "--ext=ts", script];
  const r = spawnSync(execPath, args, { encoding: "utf8", timeout: 20_000 });
  assert.equal(r.signal, null, `the process had to be killed: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), "0");
});
