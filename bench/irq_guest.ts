/**
 * P3, run in the guest (by `bench/all.ts` through `tests/vm/vm.ts`): **sleep -> wake** latency of the library's
 * interrupt waits, with the design of the C baselines in `bench/c/irq_guest.c` and the same raiser
 * (`bench/c/irq_raise.c`, in this process): the waiter is asleep first; the raiser thread waits until every other
 * thread of the process is asleep and this thread sits in its wait syscall, stamps CLOCK_MONOTONIC and writes edu's
 * raise-interrupt register through the library's BAR mapping; the waiter stamps the same clock when the user's code
 * resumes. Two waits: `waitSync()` (blocking poll + read on this thread) and `await wait()` (the event loop sleeps;
 * Deno's FFI thread pool or Bun's epoll worker hands the wake-up over). A sample is dropped and counted when the
 * raiser could not see everyone asleep (`unconfirmed`) or the wait found the interrupt already pending
 * (`immediate`, from `waitCounts`): every figure comes from waits that slept.
 * The breakdown (`waitSync_traced`, and `wait_traced` on Deno): the same waits with the library's poll replaced
 * (through `interceptLibc`) by one of the raiser's object that stamps the clock in C as poll(2) returns: how much of
 * a wake-up is the kernel's (raise -> poll returns, `kernel_*`) and how much the runtime's and the library's
 * (poll returns -> the user's code runs, `return_*`).
 * Prints `RESULT {json}`. Usage: `irq_guest.ts [rounds] [delay_us]`.
 *
 * @module
 */
import process from "node:process";
import { interceptLibc } from "../ffi/libc.ts";
import { IrqEventFd, IrqIndex, openDevice } from "../mod.ts";
import { loadIrqRaiser } from "./irq_raise.ts";
import { summary } from "./stats.ts";

const IRQ_STATUS = 0x24, IRQ_RAISE = 0x60, IRQ_ACK = 0x64;
const ROUNDS = Number(process.argv[2] ?? 300), DELAY_US = Number(process.argv[3] ?? 1000);
/** How long the raiser waits for everyone to be asleep before it raises anyway (and the sample is dropped). */
const MAX_WAIT_US = 200_000;
const address = (process.env.VFIO_TS_EDU ?? "").split(",")[0];
if (!address) throw new Error("no edu device: run in the guest (VFIO_TS_EDU)");

const raiser = await loadIrqRaiser();
using dev = openDevice(address);
dev.config.enableMemory();
dev.config.enableBusMaster();
const bar0 = dev.bar(0);
using msi = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
const raise = bar0.unsafeAddress + BigInt(IRQ_RAISE);
const me = raiser.gettid();

type Kind = "waitSync" | "wait" | "threadsafe";
/** The thread-safe-callback probe's pending round (see `probe`). */
let probeResolve: ((count: number) => void) | undefined;

function stats(lat: number[]): Record<string, number> {
  if (lat.length === 0) return { p50_us: 0, p90_us: 0, p99_us: 0, mean_us: 0 };
  const s = summary(lat), sorted = [...lat].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
  return { p50_us: s.median, p90_us: at(0.9), p99_us: at(0.99), mean_us: s.mean };
}

async function measure(kind: Kind, traced = false): Promise<Record<string, unknown>> {
  const lat: number[] = [], kernel: number[] = [], back: number[] = [];
  const warm = Math.max(3, ROUNDS / 10);
  let unconfirmed = 0, immediate = 0;
  const blockers: Record<string, number> = {};
  for (let i = -warm; lat.length < ROUNDS && i < 4 * ROUNDS; i++) {
    const before = msi.waitCounts(0).immediate;
    raiser.start(raise, 1, me, DELAY_US, MAX_WAIT_US);
    const n = kind === "waitSync"
      ? msi.waitSync(0, { timeoutMs: 1000 })
      : kind === "wait"
      ? await msi.wait(0, { timeoutMs: 1000 })
      : await new Promise<number>((resolve) => (probeResolve = resolve));
    const t1 = raiser.monoNs();
    const polled = traced ? raiser.polledNs() : 0;
    if (n < 1) throw new Error(`${kind}: no interrupt in round ${i}`);
    while (!raiser.done()) { /* the raiser stores its verdict before the register write; this is microseconds */ }
    if (i >= 0) {
      const stamp = raiser.stampNs();
      if (msi.waitCounts(0).immediate !== before) immediate++;
      else if (!raiser.confirmed()) {
        unconfirmed++;
        const b = raiser.blocker(), key = String.fromCharCode(b & 0xff) + (b >> 8 ? `:${b >> 8}` : "");
        blockers[key] = (blockers[key] ?? 0) + 1;
      } else {
        lat.push((t1 - stamp) / 1000);
        if (polled) kernel.push((polled - stamp) / 1000), back.push((t1 - polled) / 1000);
      }
    }
    bar0.write32(IRQ_ACK, bar0.read32(IRQ_STATUS));
  }
  const out: Record<string, unknown> = { ...stats(lat), rounds: lat.length, unconfirmed, immediate };
  if (unconfirmed) out.unconfirmed_why = blockers; // state letter of a thread awake, or W:<syscall> of the waiter
  if (traced) {
    const k = stats(kernel), r = stats(back);
    out.kernel_p50_us = k.p50_us; // raise -> poll(2) returns, stamped in C
    out.kernel_mean_us = k.mean_us;
    out.return_p50_us = r.p50_us; // poll returns -> the user's code runs (FFI return, the library, the clock read)
    out.return_mean_us = r.mean_us;
  }
  return out;
}

/** Runs `kind` with the library's poll replaced by the raiser's stamping one. */
async function traced(kind: Kind): Promise<Record<string, unknown>> {
  interceptLibc((name, fn) => {
    if (name === "pollIn") return (fd: number, timeoutMs: number) => raiser.timedPoll(fd, timeoutMs);
    if (name === "waitReadable" && raiser.timedPollAsync) {
      return async (fd: number, timeoutMs: number) => (await raiser.timedPollAsync!(fd, timeoutMs)) > 0;
    }
    return fn;
  });
  try {
    return await measure(kind, true);
  } finally {
    interceptLibc(null);
  }
}

/**
 * The design issue #15 proposes for Deno's async wait, as a probe (not the library): a C thread sleeping in poll(2)
 * on the vector's eventfd calls a thread-safe callback with the count. Deno only: under Bun 1.4 a threadsafe
 * `JSCallback` called from a foreign thread never ran on the JS thread in our tries (the wait hung).
 */
async function probe(): Promise<Record<string, unknown> | undefined> {
  if ("Bun" in globalThis) return undefined;
  const stop = new IrqEventFd("probe stop");
  const join = raiser.waiterStart(msi.eventfd(0), stop.fd, (n) => probeResolve?.(n));
  try {
    return await measure("threadsafe", true);
  } finally {
    stop.notify();
    await join();
    stop.close();
  }
}

const waitSync = await measure("waitSync");
const wait = await measure("wait");
const waitSyncTraced = await traced("waitSync");
const waitTraced = raiser.timedPollAsync ? await traced("wait") : undefined;
const threadsafe = await probe();
const at = (k: Record<string, unknown>, key: string): number => k[key] as number;
console.log(
  "RESULT " + JSON.stringify({
    runtime: "Bun" in globalThis ? "bun" : "deno",
    waitSync,
    wait,
    waitSync_traced: waitSyncTraced,
    ...(waitTraced ? { wait_traced: waitTraced } : {}),
    ...(threadsafe ? { wait_threadsafe_probe: threadsafe } : {}),
    immediate: at(waitSync, "immediate") + at(wait, "immediate"),
    unconfirmed: at(waitSync, "unconfirmed") + at(wait, "unconfirmed"),
    slept: at(waitSync, "rounds") + at(wait, "rounds"),
  }),
);
