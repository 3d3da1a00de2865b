/**
 * An NVMe driver program over the NVMe layer in `nvme/`, tried on QEMU's `nvme` (1b36:0010) and meant for any NVMe
 * controller: controller reset and enable, Identify Controller and Identify Namespace (printed like `nvme id-ctrl` /
 * `nvme id-ns`), two I/O queue pairs (one completing by MSI-X interrupt, one polled), reads of a block range through
 * both (and optionally a destructive write of a test pattern first), and a clean shutdown.
 *
 *   deno run -A examples/nvme.ts <address> [options]      (see --help)
 *   bun examples/nvme.ts <address> [options]
 *   deno task vm --mode iommu examples/nvme.ts 0000:00:04.0 --check    (in the emulated guest: no hardware needed)
 *
 * Exits non-zero when any check fails.
 * @module
 */
import process from "node:process";
import { hex, hexDigits } from "../lib/hex.ts";
import { type DmaBuffer, findPciDevices, type HugepagePolicy, IrqIndex, openDevice, VfioError } from "../mod.ts";
import { intOption, programArgs } from "./harness.ts";
import { Controller, Namespace, type QueuePair } from "./nvme/mod.ts";
import { fillPattern, findMismatch, patternWord } from "./nvme/pattern.ts";
import { controllerSummary, lbaFormatLines, namespaceSummary } from "./nvme/summary.ts";

const IO_VECTOR = 1; // MSI-X vector of the interrupt-driven I/O queue (vector 0 belongs to the admin queue)

const USAGE = `usage: nvme.ts [address] [options]
  address          the NVMe controller, bound to vfio-pci (default: the first 1b36:0010)
  --nsid N         namespace (default 1)
  --lba N          first block (default 0)
  --blocks N       how many blocks to read (default 8)
  --check          the blocks must hold the test pattern: every 32-bit little-endian word is the low 32 bits of
                   its byte offset in the namespace XOR --seed (the vm rig's fresh image has seed 0 in its first MiB)
  --write          DESTRUCTIVE: first write the pattern to the blocks (needs an explicit --lba), flush, read back
  --seed X         pattern seed (default 0)
  --hugepages P    data buffers on 2 MiB pages: prefer (default), require or never (4 KiB pages, scattered
                   physical pages without an IOMMU: the PRP list names each one)
  --noiommu        allow no-IOMMU mode
  --json           print one JSON document instead of the report`;

const { values, positionals, checks } = programArgs(USAGE, {
  nsid: { type: "string", default: "1" },
  lba: { type: "string" },
  blocks: { type: "string", default: "8" },
  check: { type: "boolean" },
  write: { type: "boolean" },
  seed: { type: "string", default: "0" },
  hugepages: { type: "string", default: "prefer" },
  noiommu: { type: "boolean" },
});

const json = values.json ?? false;
const report: Record<string, unknown> = {};
const log = (line: string): void => void (json || console.log(line));

async function main(): Promise<void> {
  const max = Number.MAX_SAFE_INTEGER;
  const nsid = intOption("nsid", values.nsid!, 1, 0xfffffffe);
  const blocks = intOption("blocks", values.blocks!, 1, max);
  const seed = intOption("seed", values.seed!, -(2 ** 31), 0xffffffff) >>> 0;
  if (values.write && values.lba === undefined) {
    throw new VfioError("--write overwrites blocks on the device", { remedy: "choose them with an explicit --lba" });
  }
  const lba = intOption("lba", values.lba ?? "0", 0, max);
  const hugepages = values.hugepages as HugepagePolicy;
  if (!["prefer", "require", "never"].includes(hugepages)) {
    throw new VfioError(`--hugepages ${hugepages}: expected prefer, require or never`);
  }
  const address = positionals[0] ?? findPciDevices("1b36:0010")[0]?.address;
  if (!address) throw new VfioError("no NVMe controller given and no 1b36:0010 found", { remedy: "pass its address" });

  using dev = openDevice(address, { noiommu: values.noiommu });
  log(`nvme at ${dev.name} through ${dev.iommu}`);
  Object.assign(report, { device: dev.name, iommu: dev.iommu });
  // MSI-X must be on before a CQ can be given a vector other than 0 (QEMU checks).
  const msixCount = dev.irqInfo(IrqIndex.MSIX).count;
  if (msixCount < 2) throw new VfioError(`the controller offers ${msixCount} MSI-X vectors; this example needs 2`);
  using irqs = dev.enableIrqs(IrqIndex.MSIX, { count: 2 });
  using buffers = new DisposableStack(); // data buffers: freed after the controller has stopped
  using ctrl = await Controller.enable(dev); // closed first: the controller stops before any memory goes
  const { cap } = ctrl;
  log(
    `CAP ${hex(cap.raw)}: MQES ${cap.MQES + 1} entries, TO ${ctrl.readyTimeoutMs} ms, DSTRD ${cap.DSTRD} (doorbell ` +
      `stride ${ctrl.doorbellStride}), MPSMIN ${4 << cap.MPSMIN} KiB; version ${ctrl.version}`,
  );
  checks.check(true, `controller enabled: admin queues of ${ctrl.depth} entries at ${hex(ctrl.admin.sqBus)}`);

  const id = await ctrl.identifyController();
  const controller = report.controller = controllerSummary(id);
  log("NVME Identify Controller:");
  for (const [k, v] of Object.entries(controller)) log(`${k.padEnd(10)}: ${v}`);
  const { mn, sn } = controller;
  checks.check(sn.length > 0 && mn.length > 0, `identify controller: "${mn}" serial "${sn}"`);
  if (nsid > id.nn) throw new VfioError(`namespace ${nsid} does not exist (the controller has ${id.nn})`);

  const info = await ctrl.identifyNamespace(nsid);
  const { blockSize } = info;
  const { lbafs: _, blockSize: __, ...fields } = report.namespace = namespaceSummary(info);
  log(`NVME Identify Namespace ${nsid}:`);
  for (const [k, v] of Object.entries(fields)) log(`${k.padEnd(8)}: ${v}`);
  lbaFormatLines(info).forEach(log);
  const size = `${info.blocks} blocks of ${blockSize} bytes (${Number(info.blocks) * blockSize} bytes)`;
  checks.check(true, `namespace ${nsid}: ${size}`);
  const ns = new Namespace(ctrl, info);
  ns.checkRange(lba, blocks);

  // Two I/O queue pairs: 1 completes by MSI-X vector IO_VECTOR, 2 is polled (no interrupts).
  const granted = await ctrl.setNumberOfQueues(2);
  log(`I/O queues granted: ${granted.submission} submission, ${granted.completion} completion`);
  const io = [
    await ctrl.createIoQueuePair({ id: 1, irq: { set: irqs, vector: IO_VECTOR } }),
    await ctrl.createIoQueuePair({ id: 2 }),
  ];
  checks.check(true, `I/O queue pairs created: 1 on MSI-X vector ${IO_VECTOR}, 2 polled`);

  const bytes = blocks * blockSize;
  const timed = async (io: Promise<unknown>): Promise<number> => {
    const t0 = performance.now();
    await io;
    return performance.now() - t0;
  };
  const read = (q: QueuePair, buf: DmaBuffer): Promise<number> => timed(ns.read(q, buf, lba, blocks));
  const rate = (ms: number): string => `${ms.toFixed(1)} ms, ${(bytes / 1048576 / (ms / 1000)).toFixed(1)} MiB/s`;
  const firstByte = lba * blockSize;
  const chunks = ns.commandsFor(blocks);
  // Two read buffers with different filler, so that "both queues read the same bytes" proves both DMAs landed.
  const polled = buffers.use(dev.allocDma(bytes, { hugepages })).fill(0xee);
  const irqd = buffers.use(dev.allocDma(bytes, { hugepages })).fill(0x11);
  log(
    `I/O: blocks ${lba}..${lba + blocks - 1} (${bytes} bytes, ${chunks} command(s) of at most ` +
      `${ns.blocksPerCommand * blockSize} bytes), buffers on ${polled.hugepage ? "2 MiB" : "4 KiB"} pages` +
      `${polled.contiguous ? "" : ", not bus-contiguous"}`,
  );

  if (values.write) {
    const src = buffers.use(dev.allocDma(bytes, { hugepages }));
    fillPattern(src.u32.subarray(0, bytes / 4), firstByte, seed);
    const ms = await timed(ns.write(io[0], src, lba, blocks).then(() => ns.flush(io[0])));
    checks.check(true, `wrote the pattern (seed ${hex(seed)}) and flushed, by interrupt (${rate(ms)})`);
  }

  const pollMs = await read(io[1], polled);
  checks.check(true, `read by polling (${rate(pollMs)})`);
  const irqBefore = io[0].interrupts;
  const irqMs = await read(io[0], irqd);
  const irqCount = io[0].interrupts - irqBefore;
  checks.check(irqCount > 0, `read by MSI-X interrupt (${irqCount} interrupts, ${rate(irqMs)})`);
  const a = polled.u8.subarray(0, bytes);
  const b = irqd.u8.subarray(0, bytes);
  checks.check(a.every((v, i) => v === b[i]), "both queues read the same bytes");
  const words = Array.from(polled.u32.subarray(0, 8), (w) => hexDigits(w, 8)).join(" ");
  log(`LBA ${lba}: ${words} ...`);
  const interrupts = io[0].interrupts;
  report.io = { lba, blocks, blockSize, chunks, pollMs, irqMs, interrupts, firstWords: words };
  if (values.check || values.write) {
    const bad = findMismatch(polled.u32.subarray(0, bytes / 4), firstByte, seed);
    const at = firstByte + 4 * bad;
    const where = bad < 0 ? "" : `: byte ${at} holds ${hex(polled.u32[bad])}, expected ${hex(patternWord(at, seed))}`;
    checks.check(bad < 0, `blocks ${lba}..${lba + blocks - 1} hold the pattern with seed ${hex(seed)}${where}`);
  }

  // Tidy up: delete the I/O queues (SQ before its CQ), then a normal shutdown so the data is on the medium.
  for (const q of io) await ctrl.deleteIoQueuePair(q);
  await ctrl.shutdown();
  checks.check(true, "I/O queues deleted, controller shut down");
}

try {
  await main();
} catch (e) {
  checks.check(false, `${e instanceof Error ? e.message : e}`);
}
if (json) console.log(JSON.stringify({ ...report, checks: checks.results, ok: checks.failures === 0 }, null, 2));
else console.log(checks.summary());
process.exitCode = checks.failures ? 1 : 0;
