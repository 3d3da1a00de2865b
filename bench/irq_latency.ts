/**
 * Wake-up latency of interrupt waiting, host only (no device: an eventfd stands in for the vector):
 * - `wait()`: a timer writes the eventfd, the awaiting code resumes; one way, same clock.
 * - `spin()`: ping-pong with a worker thread that also spins; half the round trip.
 * Beside a C baseline measured in the same run (eventfd write → epoll_wait in another thread, and a spinning
 * reader). Run: `deno run -A bench/irq_latency.ts` and `bun bench/irq_latency.ts`.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { libc } from "../ffi/libc.ts";
import { IrqEventFd } from "../lib/irq_eventfd.ts";

const ROUNDS = Number(process.env.ROUNDS ?? 2000);

function stats(us: number[]): { median: number; p90: number; p99: number } {
  const s = [...us].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(s.length * q))];
  return { median: at(0.5), p90: at(0.9), p99: at(0.99) };
}

async function waitLatency(): Promise<number[]> {
  using efd = new IrqEventFd("bench");
  const out: number[] = [];
  for (let i = 0; i < ROUNDS + 100; i++) {
    let sentAt = 0;
    setTimeout(() => {
      sentAt = performance.now();
      efd.notify();
    }, 1);
    const n = await efd.wait();
    const us = (performance.now() - sentAt) * 1000;
    if (n !== 1) throw new Error(`expected 1, got ${n}`);
    if (i >= 100) out.push(us); // the first rounds warm up the JIT and the waiter thread
  }
  return out;
}

async function spinLatency(): Promise<number[]> {
  const ping = new IrqEventFd("ping"), pong = new IrqEventFd("pong");
  const worker = new Worker(new URL("./irq_latency_worker.ts", import.meta.url).href, { type: "module" });
  const messages: string[] = [];
  let notify: (() => void) | undefined;
  worker.onerror = (e): void => {
    console.error("worker failed:", e.message);
    process.exit(1);
  };
  worker.onmessage = (e: MessageEvent<string>): void => {
    messages.push(e.data);
    notify?.();
  };
  const next = (): Promise<void> => new Promise((r) => (notify = r));
  const loaded = next();
  await loaded; // the worker says when it can receive (its module loads asynchronously)
  const ready = next();
  worker.postMessage({ ping: ping.fd, pong: pong.fd, rounds: ROUNDS + 100 });
  await ready;
  const done = next();
  const out: number[] = [];
  const one = new BigUint64Array([1n]);
  for (let i = 0; i < ROUNDS + 100; i++) {
    const t0 = performance.now();
    libc.write(ping.fd, one);
    let n = 0;
    while (n === 0) n = pong.spin({ maxSpins: 1_000_000 });
    const us = ((performance.now() - t0) * 1000) / 2;
    if (i >= 100) out.push(us);
  }
  await done;
  worker.terminate();
  ping.close();
  pong.close();
  return out;
}

function cBaseline(): Record<string, { median: number; p90: number }> {
  const dir = mkdtempSync(join(tmpdir(), "vfio-ts-bench-"));
  const exe = join(dir, "irq_latency");
  execFileSync("gcc", ["-O2", "-pthread", "-o", exe, new URL("./c/irq_latency.c", import.meta.url).pathname]);
  const out: Record<string, { median: number; p90: number }> = {};
  for (const line of execFileSync(exe).toString().trim().split("\n")) {
    const [name, median, p90] = line.split(" ");
    out[name] = { median: Number(median), p90: Number(p90) };
  }
  return out;
}

const w = stats(await waitLatency());
const s = stats(await spinLatency());
const c = cBaseline();
const f = (x: number): string => x.toFixed(1).padStart(7);
console.log(`IRQ wake-up latency on ${libc.runtime}, µs (${ROUNDS} rounds; C measured in the same run)`);
console.log(`                         median     p90     p99`);
console.log(`wait() (timer → resume)  ${f(w.median)} ${f(w.p90)} ${f(w.p99)}`);
console.log(`spin() (half ping-pong)  ${f(s.median)} ${f(s.p90)} ${f(s.p99)}`);
console.log(`C epoll_wait (2 threads) ${f(c.epoll_wait.median)} ${f(c.epoll_wait.p90)}`);
console.log(`C spin read (2 threads)  ${f(c.spin.median)} ${f(c.spin.p90)}`);
