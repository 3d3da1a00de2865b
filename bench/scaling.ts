/**
 * Multi-core scaling on the simulated NIC: one `Worker` per queue pair, each driving its own queue pair's memory
 * handed over with `shareWindow` (no copy), against one worker alone. There is no device thread: each worker runs
 * the simulated device's pass (`nic_step`, C) inline between its batches, so N queue pairs keep exactly N threads
 * busy and 2 workers can use 2 cores.
 *
 * Method: every run, each worker first warms up on its queue pair (`BENCH_SCALING_WARMUP` packets), says it is
 * armed and sleeps in `Atomics.wait`; the main thread resets the rings and releases all workers at once (a
 * barrier), then sleeps in its event loop until they report. Each worker stamps CLOCK_MONOTONIC around its run;
 * throughput is all packets over the window from the first start to the last end (`mpps`), and, beside it, the sum
 * of the workers' own rates (`mpps_sum`) and how much of the window every worker was running (`overlap`). The
 * process's CPU time in the window minus the workers' own (`other_cpu_ms`, and per thread from
 * /proc/self/task/N/schedstat: `samples.threads`) shows whether anything else in the process (runtime threads, the
 * main thread) took a core, and each worker's CPU time over its wall time (`on_cpu`) whether it had a core at all. 1 and 2 workers alternate, `BENCH_SCALING_REPEAT` times;
 * the ratio is the median of the paired per-repetition ratios. Prints `RESULT {json}` (`bench/all.ts`).
 *
 * Run: `deno run -A bench/scaling.ts`, `bun bench/scaling.ts`.
 *
 * @module
 */
import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";
import { libc } from "../ffi/libc.ts";
import { shareWindow } from "../lib/shared_window.ts";
import { loadBenchNative } from "./native.ts";
import { SimNic } from "./nic_sim.ts";
import { summary } from "./stats.ts";

const PACKETS = Number(process.env.BENCH_SCALING_PACKETS ?? process.env.BENCH_PACKETS ?? 10_000_000);
const REPEAT = Number(process.env.BENCH_SCALING_REPEAT ?? 5);
// Long enough that the JITs are done: with 1 M, Bun's JITWorker threads still took 20-90 ms of the measured window.
const WARMUP = Number(process.env.BENCH_SCALING_WARMUP ?? Math.min(PACKETS / 2, 5_000_000));
const BATCH = 32;
const c = await loadBenchNative();
const hz = c.tscHz(100);

/** A worker's report of one run. */
interface Done {
  busyNs: number;
  startNs: number;
  endNs: number;
  cpuNs: number;
}
/** The next message of `w` (a worker posts "ready", "armed", then its report). */
function next<T>(w: Worker): Promise<T> {
  return new Promise((resolve, reject) => {
    w.onmessage = (e) => resolve(e.data);
    w.onerror = (e) => reject(new Error(`scaling worker: ${(e as ErrorEvent).message}`));
  });
}
async function start(): Promise<Worker> {
  const w = new Worker(new URL("./scaling_worker.ts", import.meta.url).href, { type: "module" });
  await next(w);
  return w;
}
/** On-CPU ns of every thread of this process, by "tid comm" (/proc/self/task/N/schedstat). */
function threadTimes(): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of readdirSync("/proc/self/task")) {
    try {
      const comm = readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim();
      m.set(`${t} ${comm}`, Number(readFileSync(`/proc/self/task/${t}/schedstat`, "utf8").split(" ")[0]));
    } catch { /* the thread ended */ }
  }
  return m;
}
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** One run on `queues` queue pairs: warm-up, barrier, measured run; the reports and the process CPU in between. */
async function runOnce(queues: number): Promise<{ done: Done[]; processCpuMs: number; threads: string[] }> {
  const go = new Int32Array(new SharedArrayBuffer(4));
  const ws = workers.slice(0, queues);
  for (let q = 0; q < queues; q++) nics[q].reset(false);
  const armed = ws.map((w) => next(w));
  ws.forEach((w, q) =>
    w.postMessage({
      nic: shareWindow(nics[q].region),
      batch: BATCH,
      packets: PACKETS,
      warmup: WARMUP,
      barrier: go.buffer,
    })
  );
  await Promise.all(armed);
  const reports = ws.map((w) => next<Done>(w));
  for (let q = 0; q < queues; q++) nics[q].reset(false); // fresh rings for the measured run (workers are asleep)
  const cpu0 = cpuMs(), threads0 = threadTimes();
  Atomics.store(go, 0, 1);
  Atomics.notify(go, 0);
  const done = await Promise.all(reports); // the main thread sleeps in its event loop meanwhile
  const processCpuMs = cpuMs() - cpu0;
  // Which threads ran in the window, ms (the workers and, ideally, nothing else)
  const threads = [...threadTimes()].map(([k, v]) => [k, (v - (threads0.get(k) ?? 0)) / 1e6] as const)
    .filter(([, ms]) => ms >= 0.5).map(([k, ms]) => `${k} ${ms.toFixed(1)}`);
  return { done, processCpuMs, threads };
}

const nics = [new SimNic(c), new SimNic(c)];
const workers = await Promise.all([start(), start()]);
const result: Record<string, unknown> = {
  runtime: libc.runtime,
  packets: PACKETS,
  batch: BATCH,
  tsc_hz: hz,
  warmup: WARMUP,
  cpus: (await import("node:os")).cpus().length,
};
try {
  type Series = {
    mpps: number[];
    mpps_sum: number[];
    overlap: number[];
    cycles: number[];
    other_cpu_ms: number[];
    on_cpu: number[];
    threads: string[][];
  };
  const s: Record<number, Series> = {};
  for (const q of [1, 2]) {
    s[q] = { mpps: [], mpps_sum: [], overlap: [], cycles: [], other_cpu_ms: [], on_cpu: [], threads: [] };
  }
  for (let r = 0; r < REPEAT; r++) {
    for (const queues of r % 2 ? [2, 1] : [1, 2]) { // alternate the order, so a drift hits both alike
      const { done, processCpuMs, threads } = await runOnce(queues);
      s[queues].threads.push(threads);
      const first = Math.min(...done.map((d) => d.startNs)), last = Math.max(...done.map((d) => d.endNs));
      const common = Math.min(...done.map((d) => d.endNs)) - Math.max(...done.map((d) => d.startNs));
      const x = s[queues];
      x.mpps.push((queues * PACKETS) / ((last - first) / 1000));
      x.mpps_sum.push(done.reduce((a, d) => a + PACKETS / ((d.endNs - d.startNs) / 1000), 0));
      x.overlap.push(common / (last - first));
      x.other_cpu_ms.push(processCpuMs - done.reduce((a, d) => a + d.cpuNs, 0) / 1e6);
      for (const d of done) {
        x.cycles.push((d.busyNs / PACKETS) * hz / 1e9);
        x.on_cpu.push(d.cpuNs / (d.endNs - d.startNs)); // < 1: the worker waited for a core (load from elsewhere)
      }
    }
  }
  const paired = (k: "mpps" | "mpps_sum") => summary(s[2][k].map((x, i) => x / s[1][k][i]));
  const side = (x: Series) => ({
    mpps: summary(x.mpps),
    mpps_sum: summary(x.mpps_sum),
    overlap: summary(x.overlap),
    cycles_per_packet: summary(x.cycles),
    other_cpu_ms: summary(x.other_cpu_ms),
    on_cpu: summary(x.on_cpu),
    samples: x,
  });
  result.one = side(s[1]);
  result.two = side(s[2]);
  result.scaling = paired("mpps");
  result.scaling_sum = paired("mpps_sum");
  const m = (xs: number[], d = 1): string => summary(xs).median.toFixed(d);
  process.stderr.write(
    `scaling ${libc.runtime}: 1 worker ${m(s[1].mpps)} Mpps, 2 workers ${m(s[2].mpps)} Mpps (${
      paired("mpps").median.toFixed(2)
    }× [${paired("mpps").q1.toFixed(2)}–${paired("mpps").q3.toFixed(2)}]; sum of worker rates ${
      paired("mpps_sum").median.toFixed(2)
    }×); overlap ${m(s[2].overlap, 3)}; workers on a CPU ${m(s[1].on_cpu, 2)} / ${
      m(s[2].on_cpu, 2)
    } of the time; busy cycles/packet ${m(s[1].cycles, 0)} / ${m(s[2].cycles, 0)}; ` +
      `other threads' CPU in the window ${m(s[1].other_cpu_ms)} / ${m(s[2].other_cpu_ms)} ms\n`,
  );
} finally {
  for (const w of workers) w.terminate();
  for (const n of nics) n.close();
}
console.log("RESULT " + JSON.stringify(result));
