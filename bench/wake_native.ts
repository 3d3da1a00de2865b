/**
 * P3 on the host CPU: the sleep -> wake path of `IrqEventFd.waitSync()` and `await IrqEventFd.wait()` against the C
 * designs they are judged by (bench/c/bench_device.c: a blocking read; a waiter thread handing off to an epoll main
 * loop), at the host's own speed. The guest's P3 (bench/irq_guest.ts) wakes on edu's MSI under TCG, which runs every
 * user-space instruction of the return path 10-50x slower than a CPU does; here no device exists, and an eventfd
 * written by a thread after a delay stands in for the interrupt (the kernel's side of the wake-up, an eventfd signal
 * and a task woken, is what an MSI's is).
 *
 * Rounds alternate C and the runtime (which goes first alternates too), each waiter asleep before the raise; the
 * ratio is per block of BLOCK rounds (the runtime's p50 over C's p50 of the same block), over the blocks.
 * Prints `RESULT {...}`. Run: `deno run -A bench/wake_native.ts`, `bun bench/wake_native.ts`.
 *
 * @module
 */
import process from "node:process";
import { IrqEventFd } from "../lib/irq_eventfd.ts";
import { loadBenchNative } from "./native.ts";
import { latencyStats, pairedRatio, rounded } from "./stats.ts";

const quick = process.argv.includes("--quick");
/** Rounds per design (after WARM dropped ones), in blocks of BLOCK; the raise comes DELAY_US after the round starts. */
const ROUNDS = quick ? 400 : 3000, BLOCK = 100, WARM = 100, DELAY_US = 200;

const native = await loadBenchNative();

/** Latencies (µs) of the C and the runtime side of one design, round by round. */
interface Pairs {
  c: number[];
  rt: number[];
}

/** The runtime's `waitSync()` rounds beside the C blocking read's. */
function blockDesign(efd: IrqEventFd, fd: number): Pairs {
  const out: Pairs = { c: [], rt: [] };
  const runtimeRound = (): number => {
    native.startEventfdRaise(fd, DELAY_US);
    const n = efd.waitSync();
    const t1 = native.monoNs();
    if (n !== 1) throw new Error(`waitSync: expected 1 interrupt, got ${n}`);
    return (t1 - native.eventfdRaiseStampNs()) / 1000;
  };
  for (let i = -WARM; i < ROUNDS; i++) {
    const cFirst = (i & 1) === 0;
    const a = cFirst ? native.cWakeBlockNs(DELAY_US) / 1000 : runtimeRound();
    const b = cFirst ? runtimeRound() : native.cWakeBlockNs(DELAY_US) / 1000;
    const [c, rt] = cFirst ? [a, b] : [b, a];
    if (c < 0) throw new Error("the C block design failed");
    if (i >= 0) out.c.push(c), out.rt.push(rt);
  }
  return out;
}

/** The runtime's `await wait()` rounds beside the C hand-off's. */
async function handoffDesign(efd: IrqEventFd, fd: number): Promise<Pairs> {
  const out: Pairs = { c: [], rt: [] };
  const runtimeRound = async (): Promise<number> => {
    native.startEventfdRaise(fd, DELAY_US);
    const n = await efd.wait();
    const t1 = native.monoNs();
    if (n !== 1) throw new Error(`wait: expected 1 interrupt, got ${n}`);
    return (t1 - native.eventfdRaiseStampNs()) / 1000;
  };
  native.handoffStart();
  try {
    for (let i = -WARM; i < ROUNDS; i++) {
      const cFirst = (i & 1) === 0;
      const a = cFirst ? native.cWakeHandoffNs(DELAY_US) / 1000 : await runtimeRound();
      const b = cFirst ? await runtimeRound() : native.cWakeHandoffNs(DELAY_US) / 1000;
      const [c, rt] = cFirst ? [a, b] : [b, a];
      if (c < 0) throw new Error("the C hand-off design failed");
      if (i >= 0) out.c.push(c), out.rt.push(rt);
    }
  } finally {
    native.handoffStop();
  }
  return out;
}

/** Each design's figures: both sides' latency stats and the per-block p50 ratio. */
function report({ c, rt }: Pairs): Record<string, unknown> {
  const p50 = (xs: number[], b: number): number => latencyStats(xs.slice(b * BLOCK, (b + 1) * BLOCK)).p50_us;
  const blocks = Array.from({ length: Math.floor(c.length / BLOCK) }, (_, b) => b);
  return {
    c: latencyStats(c),
    runtime: latencyStats(rt),
    block_ratio: pairedRatio(blocks.map((b) => p50(rt, b)), blocks.map((b) => p50(c, b))),
  };
}

using efd = new IrqEventFd("P3 on the host");
const fd = efd.fd; // the same descriptor throughout; waitSync() switches it to blocking mode, wait() back
const sync = report(blockDesign(efd, fd));
const async_ = report(await handoffDesign(efd, fd));
const runtime = "Bun" in globalThis ? "bun" : "deno";
console.log(
  "RESULT " +
    JSON.stringify(
      rounded({ runtime, rounds: ROUNDS, block: BLOCK, delay_us: DELAY_US, waitSync: sync, wait: async_ }),
    ),
);
