/**
 * Multi-core scaling on the simulated NIC: one `Worker` per queue pair, each driving its own queue pair's memory
 * handed over with `shareWindow` (no copy), against one worker alone. There is no device thread: each worker runs
 * the simulated device's pass (`nic_step`, C) inline between its batches, so N queue pairs keep exactly N threads
 * busy and 2 workers can use 2 cores. Reported: throughput over wall time and each worker's busy cycles per packet
 * (driver and inline device together). Prints `RESULT {json}` (`bench/all.ts` runs it on both runtimes).
 *
 * Run: `deno run -A bench/scaling.ts`, `bun bench/scaling.ts`.
 *
 * @module
 */
import process from "node:process";
import { libc } from "../ffi/libc.ts";
import { shareWindow } from "../lib/shared_window.ts";
import { loadBenchNative } from "./native.ts";
import { SimNic } from "./nic_sim.ts";
import { summary } from "./stats.ts";

const PACKETS = Number(process.env.BENCH_PACKETS ?? 2_000_000), REPEAT = Number(process.env.BENCH_SCALING_REPEAT ?? 3);
const BATCH = 32;
const c = await loadBenchNative();
const hz = c.tscHz(100);

function start(): Promise<Worker> {
  const w = new Worker(new URL("./scaling_worker.ts", import.meta.url).href, { type: "module" });
  return new Promise((resolve, reject) => {
    w.onmessage = () => resolve(w);
    w.onerror = (e) => reject(new Error(`scaling worker: ${(e as ErrorEvent).message}`));
  });
}
function run(w: Worker, job: unknown): Promise<{ busyNs: number }> {
  return new Promise((resolve, reject) => {
    w.onmessage = (e) => resolve(e.data);
    w.onerror = (e) => reject(new Error(`scaling worker: ${(e as ErrorEvent).message}`));
    w.postMessage(job);
  });
}

const nics = [new SimNic(c), new SimNic(c)];
const workers = await Promise.all([start(), start()]);
const result: Record<string, unknown> = { runtime: libc.runtime, packets: PACKETS, batch: BATCH, tsc_hz: hz };
try {
  const mpps: Record<number, number[]> = { 1: [], 2: [] }, cycles: Record<number, number[]> = { 1: [], 2: [] };
  for (let r = -1; r < REPEAT; r++) { // r = -1: warm-up
    for (const queues of [1, 2]) {
      for (let q = 0; q < queues; q++) nics[q].reset(false);
      const t0 = performance.now();
      const done = await Promise.all(
        Array.from(
          { length: queues },
          (_, q) => run(workers[q], { nic: shareWindow(nics[q].region), batch: BATCH, packets: PACKETS }),
        ),
      );
      const ms = performance.now() - t0;
      if (r < 0) continue;
      mpps[queues].push((queues * PACKETS) / (ms * 1000));
      for (const d of done) cycles[queues].push((d.busyNs / PACKETS) * hz / 1e9);
    }
  }
  const scaling = summary(mpps[2].map((x, i) => x / mpps[1][i]));
  result.one = { mpps: summary(mpps[1]), cycles_per_packet: summary(cycles[1]) };
  result.two = { mpps: summary(mpps[2]), cycles_per_packet: summary(cycles[2]) };
  result.scaling = scaling;
  process.stderr.write(
    `scaling ${libc.runtime}: 1 worker ${summary(mpps[1]).median.toFixed(1)} Mpps, 2 workers ${
      summary(mpps[2]).median.toFixed(1)
    } Mpps (${scaling.median.toFixed(2)}×); busy cycles/packet ${summary(cycles[1]).median.toFixed(0)} / ${
      summary(cycles[2]).median.toFixed(0)
    }\n`,
  );
} finally {
  for (const w of workers) w.terminate();
  for (const n of nics) n.close();
}
console.log("RESULT " + JSON.stringify(result));
