/**
 * Interrupt-driven receive versus busy polling at a low rate, run in the guest: one process sends numbered frames
 * at `--rate` frames/s from one port and receives them on another port of the same hub, either polling without
 * pause (ixy's busy polling) or with {@linkcode IdleLoop} sleeping on the receive queues' interrupts (MSI-X for igb,
 * MSI for e1000e) after 16 empty polls. Measures CPU time per received frame (`process.cpuUsage`, user + system,
 * sender included: the same in both modes) and the latency from a frame's send to its receive (median, p99).
 * Each pair of ports is measured both ways. Prints one line per run and `RESULT {json}`.
 *
 *   deno task vm --mode iommu --devices igb@0,e1000e@0 --cmd \
 *     "deno run -A bench/nic_irq.ts 0000:00:03.0 0000:00:04.0 --rate 100 --count 300"
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { intOption } from "../examples/harness.ts";
import { FrameWriter, HEADERS } from "../examples/nic/frame.ts";
import { IdleLoop } from "../examples/nic/idle.ts";
import { type Nic, type Packet, parseMac } from "../examples/nic/nic.ts";
import { drainTx, openNic, waitForLink } from "../examples/nic/open.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rate: { type: "string", default: "100" },
    count: { type: "string", default: "300" },
    queues: { type: "string", default: "2" },
    noiommu: { type: "boolean" },
  },
});
if (positionals.length !== 2) throw new Error("usage: nic_irq.ts <port-a> <port-b> [--rate N] [--count N]");
const rate = intOption("rate", values.rate!, 1, 100_000);
const count = intOption("count", values.count!, 10, 1_000_000);
const queues = intOption("queues", values.queues!, 1, 4);

interface Run {
  runtime: string;
  from: string;
  to: string;
  mode: "busy" | "interrupts";
  frames: number;
  cpu_us_per_frame: number;
  cpu_share: number;
  latency_median_us: number;
  latency_p99_us: number;
  wakeups: number;
}

async function measure(tx: Nic, rx: Nic, mode: "busy" | "interrupts"): Promise<Run> {
  const writer = new FrameWriter({ size: 60, src: parseMac(tx.mac), dst: parseMac(rx.mac) });
  const rxQueues = Array.from({ length: rx.queues }, (_, queue) => ({ nic: rx, queue }));
  const idle = new IdleLoop(rxQueues, { interrupts: mode === "interrupts", busy: true });
  const sentAt = new Float64Array(count);
  const lat: number[] = [];
  const bufs: Packet[] = new Array(32);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now(), deadline = t0 + (count / rate) * 1000 + 5000;
  let seq = 0, received = 0;
  while (received < count && performance.now() < deadline) {
    let work = 0;
    const now = performance.now();
    if (seq < count && now - t0 >= (seq * 1000) / rate) {
      const p = tx.pool.alloc();
      if (p) {
        writer.write(p.data, seq);
        p.length = 60;
        sentAt[seq] = performance.now();
        if (tx.txBatch([p], 1, seq % tx.queues) === 1) seq++;
        else p.free();
        work++;
      }
    }
    for (let q = 0; q < rx.queues; q++) {
      const n = rx.rxBatch(bufs, 32, q);
      const at = performance.now();
      for (let i = 0; i < n; i++) {
        const f = bufs[i].data;
        const s = ((f[HEADERS] << 24) | (f[HEADERS + 1] << 16) | (f[HEADERS + 2] << 8) | f[HEADERS + 3]) >>> 0;
        if (bufs[i].length === 60 && s < seq) {
          lat.push((at - sentAt[s]) * 1000);
          received++;
        }
        bufs[i].free();
      }
      work += n;
    }
    if (mode === "interrupts" && idle.idle(work > 0)) {
      const untilNext = seq < count ? t0 + (seq * 1000) / rate - performance.now() : 100;
      await idle.sleep(Math.max(1, Math.ceil(untilNext)));
    }
  }
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - t0;
  await idle.settle();
  drainTx(tx);
  lat.sort((a, b) => a - b);
  const cpuUs = cpu.user + cpu.system;
  return {
    runtime: "Bun" in globalThis ? "bun" : "deno",
    from: `${tx.driver} ${tx.address}`,
    to: `${rx.driver} ${rx.address}`,
    mode,
    frames: received,
    cpu_us_per_frame: Math.round(cpuUs / Math.max(1, received)),
    cpu_share: Math.round((cpuUs / 1000 / wall) * 100) / 100,
    latency_median_us: Math.round(lat[lat.length >> 1] ?? NaN),
    latency_p99_us: Math.round(lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))] ?? NaN),
    wakeups: idle.stats.wakeups,
  };
}

const opts = { noiommu: values.noiommu, queues };
using a = openNic(positionals[0], opts);
using b = openNic(positionals[1], opts);
using _stop = { [Symbol.dispose]: (): void => [a, b].forEach((nic) => nic.stop()) };
for (const nic of [a, b]) await waitForLink(nic);
const runs: Run[] = [];
for (const [tx, rx] of [[a, b], [b, a]]) {
  for (const mode of ["busy", "interrupts"] as const) {
    const r = await measure(tx, rx, mode);
    runs.push(r);
    console.log(
      `${r.runtime} ${r.from} -> ${r.to} ${mode.padEnd(10)} ${r.frames} frames at ${rate}/s: ` +
        `${r.cpu_us_per_frame} us CPU per frame (${Math.round(r.cpu_share * 100)}% of a CPU), latency median ` +
        `${r.latency_median_us} us, p99 ${r.latency_p99_us} us${
          mode === "interrupts" ? `, ${r.wakeups} wake-ups` : ""
        }`,
    );
  }
}
console.log(`RESULT ${JSON.stringify(runs)}`);
