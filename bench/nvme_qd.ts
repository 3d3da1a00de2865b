/**
 * Run in the guest: 4 KiB random reads at queue depth 1, 8 and 32 through the NVMe layer (`examples/nvme/`) on the
 * nvme bound to vfio-pci, polled and by MSI-X interrupt, and through the kernel's nvme driver on an nvme of the same
 * kind left on it (fio, O_DIRECT, io_uring or else libaio). Prints a table (IOPS, mean and p99 latency) with the
 * layer's IOPS as a ratio of the kernel's, and `RESULT {json}`.
 *
 *   deno task vm --mode iommu --devices nvme,nvme:kernel bench/nvme_qd.ts [--seconds 3] [--qd 1,8,32]
 *   deno task vm --mode noiommu --devices nvme,nvme:kernel bench/nvme_qd.ts --hugepages 8
 *
 * Each run is a closed loop: `qd` readers each keep one command in flight, at a random 4 KiB-aligned offset of the
 * namespace, for `--seconds`. Under the rig's TCG the figures measure the emulation as much as the drivers; the
 * ratio is the point.
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { intOption } from "../examples/harness.ts";
import { command, Controller, Namespace, NvmOpcode, type QueuePair, ReadWriteCommand } from "../examples/nvme/mod.ts";
import { type DmaBuffer, findPciDevices, IrqIndex, openDevice, reserveHugepages, VfioError } from "../mod.ts";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    seconds: { type: "string", default: "3" },
    qd: { type: "string", default: "1,8,32" },
    kernel: { type: "string" },
    noiommu: { type: "boolean" },
    hugepages: { type: "string" },
  },
});
const seconds = intOption("seconds", values.seconds!, 1, 600);
const depths = values.qd!.split(",").map((d) => intOption("qd", d, 1, 63));
const IO = 4096;

/** One measurement: IOPS and latency in microseconds. */
interface Point {
  iops: number;
  mean_us: number;
  p99_us: number;
}

/** A small deterministic generator (xorshift32) for the offsets, the same sequence on both runtimes. */
function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

async function layerRun(q: QueuePair, ns: Namespace, buf: DmaBuffer, qd: number): Promise<Point> {
  const perIo = IO / ns.blockSize;
  const slots = Number(ns.info.blocks) / perIo;
  const next = xorshift(qd * 7919);
  const lat: number[] = [];
  const end = performance.now() + seconds * 1000;
  const reader = async (k: number): Promise<void> => {
    const data = { buffer: buf, offset: k * IO, length: IO };
    while (performance.now() < end) {
      const slba = BigInt((next() % slots) * perIo);
      const t0 = performance.now();
      await q.submit(
        command(
          ReadWriteCommand,
          "bench read",
          { opc: NvmOpcode.READ, nsid: ns.info.nsid, slba, nlb: perIo - 1 },
          data,
        ),
      );
      lat.push((performance.now() - t0) * 1000);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: qd }, (_, k) => reader(k)));
  return summarize(lat, performance.now() - t0);
}

function summarize(lat: number[], ms: number): Point {
  lat.sort((a, b) => a - b);
  const mean = lat.reduce((s, v) => s + v, 0) / lat.length;
  return { iops: lat.length / (ms / 1000), mean_us: mean, p99_us: lat[Math.floor(lat.length * 0.99)] };
}

/** The block device of an nvme on the kernel driver: the first /sys/block/nvme*n1. */
function kernelDisk(): string | undefined {
  if (values.kernel) return values.kernel;
  const name = existsSync("/sys/block") ? readdirSync("/sys/block").find((n) => /^nvme\d+n1$/.test(n)) : undefined;
  return name && `/dev/${name}`;
}

function fioRun(disk: string, qd: number, engine: string): Point | string {
  const r = spawnSync("fio", [
    "--name=qd",
    `--filename=${disk}`,
    "--direct=1",
    "--rw=randread",
    `--bs=${IO}`,
    `--iodepth=${qd}`,
    `--ioengine=${engine}`,
    `--runtime=${seconds}`,
    "--time_based",
    "--randrepeat=1",
    "--output-format=json",
  ], { encoding: "utf8", timeout: (seconds + 60) * 1000 });
  if (r.status !== 0) return `${r.error ?? ""}${r.stderr}`.trim();
  const read = JSON.parse(r.stdout).jobs[0].read;
  const p99 = read.clat_ns.percentile?.["99.000000"] ?? 0;
  return { iops: read.iops, mean_us: read.lat_ns.mean / 1000, p99_us: p99 / 1000 };
}

const address = positionals[0] || (process.env.VFIO_TS_NVME ?? "").split(",")[0] ||
  findPciDevices("1b36:0010")[0]?.address;
if (!address) throw new VfioError("no nvme on vfio-pci", { remedy: "pass its address, or run in the rig's guest" });
const results: Record<string, Record<number, Point>> = { polled: {}, irq: {}, kernel: {} };
{
  using dev = openDevice(address, { noiommu: values.noiommu || process.env.VFIO_TS_MODE === "noiommu" });
  using irqs = dev.enableIrqs(IrqIndex.MSIX, { count: 2 });
  // Without an IOMMU, 4 KiB pages can be migrated under the controller: --hugepages N reserves 2 MiB pages for
  // the queues and buffers (never migrated).
  if (values.hugepages) reserveHugepages(intOption("hugepages", values.hugepages, 1, 4096));
  using buf = dev.allocDma(63 * IO);
  using ctrl = await Controller.enable(dev);
  await ctrl.identifyController();
  const ns = new Namespace(ctrl, await ctrl.identifyNamespace(1));
  await ctrl.setNumberOfQueues(2);
  const queues = {
    polled: await ctrl.createIoQueuePair({ id: 1 }),
    irq: await ctrl.createIoQueuePair({ id: 2, irq: { set: irqs, vector: 1 } }),
  };
  for (const [kind, q] of Object.entries(queues)) {
    await layerRun(q, ns, buf, 1); // warm up the JIT and the emulation
    for (const qd of depths) {
      results[kind][qd] = await layerRun(q, ns, buf, qd);
      console.log(`layer ${kind} QD ${qd}: ${results[kind][qd].iops.toFixed(0)} IOPS`);
    }
  }
  for (const q of Object.values(queues)) await ctrl.deleteIoQueuePair(q);
  await ctrl.shutdown();
}

const disk = kernelDisk();
let engine = "io_uring";
let kernelNote = disk ? `fio on ${disk}` : "no nvme on the kernel driver (--devices nvme,nvme:kernel)";
if (disk) {
  for (const qd of depths) {
    let p = fioRun(disk, qd, engine);
    if (typeof p === "string" && engine === "io_uring") p = fioRun(disk, qd, engine = "libaio");
    if (typeof p === "string") {
      kernelNote = `fio failed: ${p}`;
      break;
    }
    results.kernel[qd] = p;
  }
  kernelNote += `, ${engine}`;
}

const runtime = "Bun" in globalThis ? "bun" : "deno";
const f = (n: number | undefined, d = 0): string => n === undefined ? "-" : n.toFixed(d);
console.log(
  `4 KiB random reads, ${seconds} s per point, ${runtime}, mode ${
    process.env.VFIO_TS_MODE ?? "?"
  }; kernel: ${kernelNote}`,
);
console.log(
  "QD | layer polled IOPS (mean/p99 us) | layer irq IOPS (mean/p99 us) | kernel IOPS (mean/p99 us) | polled/kernel | irq/kernel",
);
for (const qd of depths) {
  const cell = (p?: Point): string => p ? `${f(p.iops)} (${f(p.mean_us)}/${f(p.p99_us)})` : "-";
  const [p, i, k] = [results.polled[qd], results.irq[qd], results.kernel[qd]];
  const ratio = (x?: Point): string => x && k ? f(x.iops / k.iops, 2) : "-";
  console.log(`${qd} | ${cell(p)} | ${cell(i)} | ${cell(k)} | ${ratio(p)} | ${ratio(i)}`);
}
console.log(`RESULT ${JSON.stringify({ runtime, seconds, kernel: kernelNote, results })}`);
