/**
 * P3, run in the guest (by `bench/all.ts` through `tests/vm/vm.ts`): **sleep -> wake** latency of the library's
 * interrupt waits, with the design of the C baselines in `bench/c/irq_guest.c`: the waiter is asleep first; a C
 * thread (`bench/c/bench_device.c`'s delayed writer, in this process) sleeps `delay_us`, stamps CLOCK_MONOTONIC and
 * writes edu's raise-interrupt register through the library's BAR mapping; the waiter stamps the same clock when it
 * resumes. Two waits: `waitSync()` (blocking poll + read on this thread) and `await wait()` (the event loop sleeps;
 * Deno's FFI thread pool or Bun's epoll worker hands the wake-up over). Also counts how many waits found the
 * interrupt already pending (`waitCounts`): a sleep -> wake figure is only one if that count is 0.
 * Prints `RESULT {json}`. Usage: `irq_guest.ts [rounds] [delay_us]`.
 *
 * @module
 */
import process from "node:process";
import { IrqIndex, openDevice } from "../mod.ts";
import { loadBenchNative } from "./native.ts";
import { summary } from "./stats.ts";

const IRQ_STATUS = 0x24, IRQ_RAISE = 0x60, IRQ_ACK = 0x64;
const ROUNDS = Number(process.argv[2] ?? 300), DELAY_US = Number(process.argv[3] ?? 2000);
const address = (process.env.VFIO_TS_EDU ?? "").split(",")[0];
if (!address) throw new Error("no edu device: run in the guest (VFIO_TS_EDU)");

const c = await loadBenchNative();
using dev = openDevice(address);
dev.config.enableMemory();
dev.config.enableBusMaster();
const bar0 = dev.bar(0);
using msi = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
const raise = bar0.unsafeAddress + BigInt(IRQ_RAISE);

async function measure(kind: "waitSync" | "wait"): Promise<Record<string, number>> {
  const lat: number[] = [];
  const warm = Math.max(3, ROUNDS / 10);
  for (let i = -warm; i < ROUNDS; i++) {
    c.startDelayedWriter(raise, 1, DELAY_US);
    const n = kind === "waitSync" ? msi.waitSync(0, { timeoutMs: 1000 }) : await msi.wait(0, { timeoutMs: 1000 });
    const t1 = c.monoNs();
    if (n < 1) throw new Error(`${kind}: no interrupt in round ${i}`);
    if (i >= 0) lat.push((t1 - c.delayedStampNs()) / 1000);
    bar0.write32(IRQ_ACK, bar0.read32(IRQ_STATUS));
  }
  const s = summary(lat), sorted = lat.sort((a, b) => a - b);
  return {
    p50_us: s.median,
    p90_us: sorted[Math.floor(ROUNDS * 0.9)],
    p99_us: sorted[Math.floor(ROUNDS * 0.99)],
    mean_us: s.mean,
    rounds: ROUNDS,
  };
}

const before = msi.waitCounts(0);
const waitSync = await measure("waitSync");
const wait = await measure("wait");
const after = msi.waitCounts(0);
console.log(
  "RESULT " + JSON.stringify({
    runtime: "Bun" in globalThis ? "bun" : "deno",
    waitSync,
    wait,
    immediate: after.immediate - before.immediate,
    slept: after.slept - before.slept,
  }),
);
