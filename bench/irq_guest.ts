/**
 * P3, run in the guest (by `bench/all.ts` through `tests/vm/vm.ts`): **sleep -> wake** latency of the library's
 * interrupt waits, with the design of the C baselines in `bench/c/irq_guest.c` and the same raiser
 * (`bench/c/irq_raise.c`, in this process): the waiter is asleep first; the raiser thread waits until every other
 * thread of the process is asleep and this thread sits in its wait syscall, stamps CLOCK_MONOTONIC and writes edu's
 * raise-interrupt register through the library's BAR mapping; the waiter stamps the same clock when the user's code
 * resumes. Two waits: `waitSync()` (a blocking read on this thread) and `await wait()` (the event loop sleeps;
 * Deno's FFI thread pool or Bun's epoll worker hands the wake-up over). A sample is dropped and counted when the
 * raiser could not see everyone asleep (`unconfirmed`) or the wait found the interrupt already pending
 * (`immediate`, from `waitCounts`): every figure comes from waits that slept. Each design runs its rounds in a row,
 * as the C program does and as a loop of the user's would: interleaving them made every `waitSync()` round follow an
 * async round, whose thread pool and promises touch much more memory, and that alone slowed the next wake-up under
 * QEMU's emulation (a C waiter that touched more pages between rounds woke up to 2x slower).
 * The breakdown (`waitSync_traced`, and `wait_traced` on Deno): the same waits with the library's read and poll
 * replaced (through `interceptLibc`) by ones of the raiser's object that stamp the clock in C as read(2) or poll(2)
 * returns: how much of a wake-up is the kernel's (raise -> the wait's system call returns, `kernel_*`) and how much
 * the runtime's and the library's (the system call returns -> the user's code runs, `return_*`).
 * Ring mode (`ring <edu index> <in fifo> <out fifo> <blocks> [traced]` after the delay): only `waitSync()` (`traced`:
 * its traced form, each block's kernel and return samples too), in `blocks` blocks of `rounds` kept samples, each run
 * when a token byte arrives on <in> (a blocking read: the process sleeps) and the token passed on to <out> after it
 * (the file <in>.ready, created once set up, says it waits): `bench/irq_ring.sh` runs this and the C program of
 * `bench/c/irq_guest.c` in a ring on three edu devices.
 * Prints `RESULT {json}`. Usage: `irq_guest.ts [rounds] [delay_us] [ring <edu index> <in> <out> <blocks> [traced]]`.
 *
 * @module
 */
import { closeSync, openSync, readSync, writeFileSync, writeSync } from "node:fs";
import process from "node:process";
import { interceptLibc } from "../ffi/libc.ts";
import { IrqEventFd, IrqIndex, openDevice } from "../mod.ts";
import { loadIrqRaiser } from "./irq_raise.ts";
import { latencyStats as stats } from "./stats.ts";

const IRQ_STATUS = 0x24, IRQ_RAISE = 0x60, IRQ_ACK = 0x64;
const ROUNDS = Number(process.argv[2] ?? 300), DELAY_US = Number(process.argv[3] ?? 1000);
/** How long the raiser waits for everyone to be asleep before it raises anyway (and the sample is dropped). */
const MAX_WAIT_US = 200_000;
const ringArgs = process.argv[4] === "ring" ? process.argv.slice(5, 10) : null;
const address = (process.env.VFIO_TS_EDU ?? "").split(",")[Number(ringArgs?.[0] ?? 0)];
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

/** One design's samples and counts. */
interface Series {
  kind: Kind;
  traced: boolean;
  lat: number[];
  kernel: number[];
  back: number[];
  unconfirmed: number;
  immediate: number;
  blockers: Record<string, number>;
}
const series = (kind: Kind, traced: boolean): Series => ({
  kind,
  traced,
  lat: [],
  kernel: [],
  back: [],
  unconfirmed: 0,
  immediate: 0,
  blockers: {},
});

/** The design the traced calls belong to. */
let tracedKind: Kind = "waitSync";
/** The library's wait replaced by the raiser's stamping one (the traced designs). */
const tracing = (name: string, fn: (...args: never[]) => unknown): (...args: never[]) => unknown => {
  if (name === "pollIn") return (fd: number, timeoutMs: number) => raiser.timedPoll(fd, timeoutMs);
  if (name === "eventfdRead" && tracedKind === "waitSync") { // waitSync's wait is its read; wait()'s is the poll
    // -1: EAGAIN (a look) or EINTR
    return (fd: number, value: Uint8Array) => (raiser.timedRead(fd, value) < 0 ? -1 : 0);
  }
  if (name === "waitReadable" && raiser.timedPollAsync) {
    return async (fd: number, timeoutMs: number) => (await raiser.timedPollAsync!(fd, timeoutMs)) > 0;
  }
  return fn;
};

/**
 * One sleep -> wake of `waitSync()`, a plain loop's body as a user's would be (no async frame, no promise: what the
 * C waiter's loop does); `keep`: a measured round (not warm-up).
 */
function syncRound(x: Series, keep: boolean): void {
  const before = msi.waitCounts(0).immediate;
  raiser.start(raise, 1, me, DELAY_US, MAX_WAIT_US);
  const n = msi.waitSync(0); // no timeout: the blocking read (the raiser always raises, within MAX_WAIT_US)
  const t1 = raiser.monoNs();
  settle(x, keep, n, t1, x.traced ? raiser.polledNs() : 0, before);
}

/** One sleep -> wake of an async design; `keep`: a measured round (not warm-up). */
async function asyncRound(x: Series, keep: boolean): Promise<void> {
  const before = msi.waitCounts(0).immediate;
  raiser.start(raise, 1, me, DELAY_US, MAX_WAIT_US);
  const n = x.kind === "wait"
    ? await msi.wait(0, { timeoutMs: 1000 })
    : await new Promise<number>((resolve) => (probeResolve = resolve));
  const t1 = raiser.monoNs();
  settle(x, keep, n, t1, x.traced ? raiser.polledNs() : 0, before);
}

/**
 * A round's bookkeeping once the user's code runs at `t1` (`polled`: when the traced wait's system call returned):
 * waits for the raiser's verdict, keeps or drops the sample, acknowledges edu's interrupt.
 */
function settle(x: Series, keep: boolean, n: number, t1: number, polled: number, before: number): void {
  if (n < 1) throw new Error(`${x.kind}: no interrupt`);
  while (!raiser.done()) { /* the raiser stores its verdict before the register write; this is microseconds */ }
  if (keep) {
    const stamp = raiser.stampNs();
    if (msi.waitCounts(0).immediate !== before) x.immediate++;
    else if (!raiser.confirmed()) {
      x.unconfirmed++;
      const b = raiser.blocker(), key = String.fromCharCode(b & 0xff) + (b >> 8 ? `:${b >> 8}` : "");
      x.blockers[key] = (x.blockers[key] ?? 0) + 1;
    } else {
      x.lat.push((t1 - stamp) / 1000);
      if (polled) x.kernel.push((polled - stamp) / 1000), x.back.push((t1 - polled) / 1000);
    }
  }
  bar0.write32(IRQ_ACK, bar0.read32(IRQ_STATUS));
}

/** Measures each design in turn: `warm` rounds dropped, then rounds until it has ROUNDS kept samples. */
async function measure(designs: Series[], warm = Math.max(3, ROUNDS / 10)): Promise<void> {
  for (const x of designs) {
    tracedKind = x.kind;
    interceptLibc(x.traced ? tracing : null);
    for (let i = -warm; x.lat.length < ROUNDS && i < 4 * ROUNDS; i++) {
      if (x.kind === "waitSync") syncRound(x, i >= 0);
      else await asyncRound(x, i >= 0);
    }
    interceptLibc(null);
  }
}

/** Rounds each ring block runs first and drops: the first wake-ups after another process's block. */
const RING_WARM = 3;

/** Ring mode (see the module note): `waitSync()` blocks between a token in and a token out; each block's p50. */
async function ring([, inPath, outPath, blocks, traced]: string[]): Promise<void> {
  const input = openSync(inPath, "r+"), output = openSync(outPath, "r+"); // O_RDWR: a FIFO opens without a peer
  writeFileSync(`${inPath}.ready`, ""); // set up: about to sleep on the token
  const token = new Uint8Array(1), out: Record<string, unknown>[] = [];
  let unconfirmed = 0, immediate = 0;
  for (let b = 0; b < Number(blocks); b++) {
    if (readSync(input, token) !== 1) throw new Error("ring: no token");
    const x = series("waitSync", traced === "traced");
    await measure([x], RING_WARM);
    writeSync(output, token);
    unconfirmed += x.unconfirmed, immediate += x.immediate;
    const { kernel_samples, return_samples } = report(x);
    out.push({ p50_us: stats(x.lat).p50_us, samples: x.lat.map((v) => +v.toFixed(2)), kernel_samples, return_samples });
  }
  closeSync(input), closeSync(output);
  const runtime = "Bun" in globalThis ? "bun" : "deno";
  console.log("RESULT " + JSON.stringify({ runtime, ring: { blocks: out, unconfirmed, immediate } }));
}

function report(x: Series): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ...stats(x.lat),
    rounds: x.lat.length,
    unconfirmed: x.unconfirmed,
    immediate: x.immediate,
    samples: x.lat.map((v) => +v.toFixed(2)),
  };
  if (x.unconfirmed) out.unconfirmed_why = x.blockers; // R:<runnable tasks>, or W:<syscall> of the waiter
  if (x.traced) {
    const k = stats(x.kernel), r = stats(x.back);
    out.kernel_p50_us = k.p50_us; // raise -> poll(2) returns, stamped in C
    out.kernel_mean_us = k.mean_us;
    out.return_p50_us = r.p50_us; // poll returns -> the user's code runs (FFI return, the library, the clock read)
    out.return_mean_us = r.mean_us;
    out.kernel_samples = x.kernel.map((v) => +v.toFixed(2));
    out.return_samples = x.back.map((v) => +v.toFixed(2));
  }
  return out;
}

/**
 * The design issue #15 proposes for Deno's async wait, as a probe (not the library): a C thread sleeping in poll(2)
 * on the vector's eventfd calls a thread-safe callback with the count. Measured after the others (its thread takes
 * every interrupt while it runs). Deno only: under Bun 1.4 a threadsafe `JSCallback` called from a foreign thread
 * never ran on the JS thread in our tries (the wait hung).
 */
async function probe(): Promise<Record<string, unknown> | undefined> {
  if ("Bun" in globalThis) return undefined;
  const stop = new IrqEventFd("probe stop");
  const join = raiser.waiterStart(msi.eventfd(0), stop.fd, (n) => probeResolve?.(n));
  try {
    const x = series("threadsafe", true);
    await measure([x]);
    return report(x);
  } finally {
    stop.notify();
    await join();
    stop.close();
  }
}

/** Every design in turn, then the probe; prints the result. */
async function designs(): Promise<void> {
  const all = [series("waitSync", false), series("wait", false), series("waitSync", true)];
  if (raiser.timedPollAsync) all.push(series("wait", true));
  await measure(all);
  const [waitSync, wait, waitSyncTraced, waitTraced] = all.map(report);
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
}

if (ringArgs) await ring(ringArgs);
else await designs();
