/**
 * A single-file NVMe driver on vfio-ts, tried on QEMU's `nvme` (1b36:0010) and meant for any NVMe controller:
 * controller reset and enable with an admin queue pair in DMA memory, Identify Controller and Identify Namespace
 * (printed like `nvme id-ctrl` / `nvme id-ns`), two I/O queue pairs (one completing by MSI-X interrupt, one polled),
 * reads of a block range through both (and optionally a destructive write of a test pattern first), PRP lists
 * built from the DMA buffers' bus addresses (IOVA, or physical page by page without an IOMMU), and a clean shutdown.
 *
 *   deno run -A examples/nvme.ts <address> [options]      (see --help)
 *   bun examples/nvme.ts <address> [options]
 *   deno task vm --mode iommu examples/nvme.ts 0000:00:04.0 --check    (in the emulated guest: no hardware needed)
 *
 * Register and command layouts: NVM Express Base Specification 1.4 (section 3.1 registers, 4 queues, PRPs and
 * completion entries, 5 admin commands) and the NVM Command Set (read, write, flush). Exits non-zero when any check
 * fails.
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import {
  type DmaBuffer,
  findPciDevices,
  type HugepagePolicy,
  IrqIndex,
  type IrqSet,
  openDevice,
  type Region,
  VfioError,
} from "../mod.ts";

// Controller registers (BAR0)
const CAP = 0x00; // 64-bit: MQES 15:0 (queue entries, 0-based), TO 31:24 (x 500 ms), DSTRD 35:32, MPSMIN 51:48
const VS = 0x08; // version: major 31:16, minor 15:8, tertiary 7:0
const CC = 0x14; // EN 0, CSS 6:4, MPS 10:7 (page = 4 KiB << MPS), SHN 15:14, IOSQES 19:16, IOCQES 23:20
const CSTS = 0x1c; // RDY 0, CFS 1 (fatal status), SHST 3:2 (2 = shutdown complete)
const AQA = 0x24; // admin queue sizes, 0-based: ASQS 11:0, ACQS 27:16
const ASQ = 0x28; // 64-bit admin submission queue base (page aligned)
const ACQ = 0x30; // 64-bit admin completion queue base
const DOORBELLS = 0x1000; // SQ y tail at DOORBELLS + 2y * stride, CQ y head at DOORBELLS + (2y + 1) * stride
const CC_EN = 1 << 0;
const CC_SHN_NORMAL = 1 << 14;
const CC_IOSQES = 6 << 16; // 64-byte submission entries
const CC_IOCQES = 4 << 20; // 16-byte completion entries
const CSTS_RDY = 1 << 0;
const CSTS_CFS = 1 << 1;
const CSTS_SHST_COMPLETE = 2 << 2;

// Queue entries
const SQE_SIZE = 64; // dword 0: opcode 7:0, command id 31:16; 1: NSID; 6-7: PRP1; 8-9: PRP2; 10-15: command specific
const CQE_SIZE = 16; // dword 0: result; 2: SQ head 15:0; 3: command id 15:0, phase 16, status 31:17
const PAGE = 4096; // the memory page size we program (CC.MPS = 0): PRP entries and queues are in these units
const QUEUE_DEPTH = 64; // 64 x 64-byte SQEs fill one page, so every queue is one page (contiguous in every mode)

// Admin commands
const ADMIN_CREATE_IO_SQ = 0x01; // CDW10: QID 15:0, QSIZE 31:16; CDW11: PC 0, CQID 31:16
const ADMIN_CREATE_IO_CQ = 0x05; // CDW10: QID, QSIZE; CDW11: PC 0, IEN 1, IV 31:16
const ADMIN_DELETE_IO_SQ = 0x00; // CDW10: QID
const ADMIN_DELETE_IO_CQ = 0x04;
const ADMIN_IDENTIFY = 0x06; // CDW10: CNS 7:0 (0 namespace, 1 controller)
const ADMIN_SET_FEATURES = 0x09; // CDW10: feature id; 0x07 number of queues, CDW11: NSQR 15:0, NCQR 31:16 (0-based)
const FEATURE_NUMBER_OF_QUEUES = 0x07;
// NVM commands: CDW10-11 starting LBA, CDW12 NLB 15:0 (0-based)
const NVM_FLUSH = 0x00;
const NVM_WRITE = 0x01;
const NVM_READ = 0x02;

const IO_VECTOR = 1; // MSI-X vector of the interrupt-driven I/O queue (vector 0 belongs to the admin queue)
const TIMEOUT_MS = 10_000;

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

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    nsid: { type: "string", default: "1" },
    lba: { type: "string" },
    blocks: { type: "string", default: "8" },
    check: { type: "boolean" },
    write: { type: "boolean" },
    seed: { type: "string", default: "0" },
    hugepages: { type: "string", default: "prefer" },
    noiommu: { type: "boolean" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

function numberArg(name: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) throw new VfioError(`--${name} ${text}: expected an integer >= ${min}`);
  return n;
}

const json = values.json ?? false;
const report: Record<string, unknown> = {};
const checks: { ok: boolean; what: string }[] = [];
function log(line: string): void {
  if (!json) console.log(line);
}
function check(ok: boolean, what: string): boolean {
  checks.push({ ok, what });
  log(`${ok ? "ok  " : "FAIL"} ${what}`);
  return ok;
}
const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

/** What a completion entry says. */
interface Completion {
  result: number; // dword 0
  status: number; // status field without the phase bit: SC 7:0, SCT 10:8, DNR 14
}

const STATUS_NAMES: Record<number, string> = {
  0x001: "invalid command opcode",
  0x002: "invalid field in command",
  0x004: "data transfer error",
  0x006: "internal error",
  0x00b: "invalid namespace or format",
  0x013: "PRP offset invalid",
  0x080: "LBA out of range",
  0x101: "invalid queue identifier",
  0x102: "invalid queue size",
  0x108: "invalid interrupt vector",
};

function statusText(status: number): string {
  const code = status & 0x7ff; // SCT and SC
  const name = STATUS_NAMES[code] ?? `status code type ${(code >> 8) & 7}, code ${hex(code & 0xff)}`;
  return `${name} (status ${hex(status)}${status & 0x4000 ? ", do not retry" : ""})`;
}

/**
 * One submission queue and its completion queue, each a page of DMA memory. A command is 16 dwords written into the
 * SQ slot at the tail, then the tail doorbell. The controller posts a completion entry whose phase bit flips on
 * every pass through the CQ: an entry is new while its phase equals ours.
 */
class QueuePair {
  #sqTail = 0;
  #cqHead = 0;
  #phase = 1;
  #nextId = 0;
  interrupts = 0;

  constructor(
    readonly id: number,
    readonly sq: DmaBuffer,
    readonly cq: DmaBuffer,
    readonly depth: number,
    readonly bar0: Region,
    readonly stride: number,
    readonly irq?: { set: IrqSet; vector: number },
  ) {}

  /** Writes a command into the next SQ slot and rings the tail doorbell; returns its command id. */
  submit(opcode: number, fields: { nsid?: number; prp1?: bigint; prp2?: bigint; cdw?: number[] } = {}): number {
    const cid = this.#nextId;
    this.#nextId = (this.#nextId + 1) & 0xffff;
    const slot = this.#sqTail * SQE_SIZE;
    this.sq.fill(0, slot, slot + SQE_SIZE);
    this.sq.write32(slot, opcode | (cid << 16));
    this.sq.write32(slot + 4, fields.nsid ?? 0);
    this.sq.write64(slot + 24, fields.prp1 ?? 0n);
    this.sq.write64(slot + 32, fields.prp2 ?? 0n);
    (fields.cdw ?? []).forEach((v, i) => this.sq.write32(slot + 40 + 4 * i, v >>> 0)); // CDW10...
    this.#sqTail = (this.#sqTail + 1) % this.depth;
    this.bar0.write32(DOORBELLS + 2 * this.id * this.stride, this.#sqTail);
    return cid;
  }

  /** Takes the next new completion entry, if any, and rings the CQ head doorbell. */
  #reap(): { cid: number } & Completion | undefined {
    const at = this.#cqHead * CQE_SIZE;
    const dw3 = this.cq.read32(at + 12); // Atomics.load: the controller writes this behind our back
    if (((dw3 >>> 16) & 1) !== this.#phase) return undefined;
    const entry = { cid: dw3 & 0xffff, status: dw3 >>> 17, result: this.cq.read32(at) };
    this.#cqHead = (this.#cqHead + 1) % this.depth;
    if (this.#cqHead === 0) this.#phase ^= 1;
    this.bar0.write32(DOORBELLS + (2 * this.id + 1) * this.stride, this.#cqHead);
    return entry;
  }

  #finish(cid: number, entry: { cid: number } & Completion, what: string): Completion {
    if (entry.cid !== cid) throw new VfioError(`${what}: completion for command ${entry.cid}, expected ${cid}`);
    if (entry.status !== 0) throw new VfioError(`${what} failed: ${statusText(entry.status)}`);
    return entry;
  }

  /** Submits a command and waits for its completion: MSI-X if the queue has a vector, else busy polling. */
  async run(what: string, opcode: number, fields: Parameters<QueuePair["submit"]>[1] = {}): Promise<Completion> {
    const cid = this.submit(opcode, fields);
    const deadline = Date.now() + TIMEOUT_MS;
    if (this.irq) {
      for (;;) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        this.interrupts += await this.irq.set.wait(this.irq.vector, { timeoutMs: left });
        const entry = this.#reap();
        if (entry) return this.#finish(cid, entry, what);
      }
    } else {
      for (let spins = 0;; spins++) {
        const entry = this.#reap();
        if (entry) return this.#finish(cid, entry, what);
        if ((spins & 0x3ff) === 0 && Date.now() > deadline) break;
      }
    }
    throw new VfioError(`${what}: no completion within ${TIMEOUT_MS} ms on queue ${this.id}`);
  }
}

/** Waits (polling, up to `timeoutMs`) until `(CSTS & mask) === want`; fails on controller fatal status. */
async function waitStatus(bar0: Region, mask: number, want: number, what: string, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const csts = bar0.read32(CSTS);
    if (csts === 0xffffffff) throw new VfioError(`${what}: CSTS reads all ones (device gone or BAR disabled)`);
    if ((csts & mask) === want) return;
    if (csts & CSTS_CFS && want !== 0) throw new VfioError(`${what}: controller fatal status (CSTS ${hex(csts)})`);
    if (Date.now() - t0 > timeoutMs) {
      throw new VfioError(`${what}: timed out after ${timeoutMs} ms (CSTS ${hex(csts)})`);
    }
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Bytes `[at, at+len)` of an identify page as trimmed ASCII. */
function ascii(page: DmaBuffer, at: number, len: number): string {
  return new TextDecoder().decode(page.u8.subarray(at, at + len)).replace(/[\0 ]+$/, "");
}

/**
 * The data pointer for `len` bytes at page-aligned `offset` of `buf`: PRP1 is the first page, PRP2 the second page
 * or, beyond two pages, the bus address of a PRP list (in `list`) naming every further page. Each page's bus address
 * is asked for separately: without an IOMMU, 4 KiB pages of one buffer are not physically contiguous.
 */
function prps(buf: DmaBuffer, offset: number, len: number, list: DmaBuffer): { prp1: bigint; prp2: bigint } {
  const pages = Math.ceil(len / PAGE);
  const prp1 = buf.busAddress(offset);
  if (pages === 1) return { prp1, prp2: 0n };
  if (pages === 2) return { prp1, prp2: buf.busAddress(offset + PAGE) };
  for (let i = 1; i < pages; i++) list.write64((i - 1) * 8, buf.busAddress(offset + i * PAGE));
  return { prp1, prp2: list.busAddress(0) };
}

/** The test pattern: each 32-bit LE word is the low 32 bits of its byte offset in the namespace, XOR `seed`. */
function fillPattern(words: Uint32Array, firstByte: number, seed: number): void {
  for (let i = 0; i < words.length; i++) words[i] = ((firstByte + 4 * i) ^ seed) >>> 0;
}

/** The first word that differs from the pattern, or -1. */
function findMismatch(words: Uint32Array, firstByte: number, seed: number): number {
  for (let i = 0; i < words.length; i++) if (words[i] !== (((firstByte + 4 * i) ^ seed) >>> 0)) return i;
  return -1;
}

async function main(): Promise<void> {
  const nsid = numberArg("nsid", values.nsid!, 1);
  const blocks = numberArg("blocks", values.blocks!, 1);
  const seed = Number(values.seed) >>> 0;
  if (!Number.isSafeInteger(Number(values.seed))) throw new VfioError(`--seed ${values.seed}: expected an integer`);
  if (values.write && values.lba === undefined) {
    throw new VfioError("--write overwrites blocks on the device", { remedy: "choose them with an explicit --lba" });
  }
  const lba = numberArg("lba", values.lba ?? "0", 0);
  const hugepages = values.hugepages as HugepagePolicy;
  if (!["prefer", "require", "never"].includes(hugepages)) {
    throw new VfioError(`--hugepages ${hugepages}: expected prefer, require or never`);
  }
  const address = positionals[0] ?? findPciDevices("1b36:0010")[0]?.address;
  if (!address) throw new VfioError("no NVMe controller given and no 1b36:0010 found", { remedy: "pass its address" });

  using dev = openDevice(address, { noiommu: values.noiommu });
  log(`nvme at ${dev.name} through ${dev.iommu}`);
  report.device = dev.name;
  report.iommu = dev.iommu;
  dev.config.enableMemory();
  dev.config.enableBusMaster();
  const bar0 = dev.bar(0);

  // Capabilities: two 32-bit reads (what every controller accepts for a 64-bit register).
  const cap = BigInt(bar0.read32(CAP)) | (BigInt(bar0.read32(CAP + 4)) << 32n);
  const mqes = Number(cap & 0xffffn) + 1;
  const timeoutMs = Number((cap >> 24n) & 0xffn) * 500 || 500;
  const dstrd = Number((cap >> 32n) & 0xfn);
  const mpsmin = Number((cap >> 48n) & 0xfn);
  const stride = 4 << dstrd;
  const vs = bar0.read32(VS);
  const version = `${vs >>> 16}.${(vs >> 8) & 0xff}.${vs & 0xff}`;
  log(
    `CAP ${hex(cap)}: MQES ${mqes} entries, TO ${timeoutMs} ms, DSTRD ${dstrd} (doorbell stride ${stride}), ` +
      `MPSMIN ${4 << mpsmin} KiB; version ${version}`,
  );
  if (mpsmin !== 0) {
    throw new VfioError(`the controller's smallest page is ${4 << mpsmin} KiB; this example uses 4 KiB`);
  }
  const depth = Math.min(QUEUE_DEPTH, mqes);

  // Reset: clear CC.EN and wait for CSTS.RDY to drop (the controller forgets every queue).
  bar0.write32(CC, bar0.read32(CC) & ~CC_EN);
  await waitStatus(bar0, CSTS_RDY, 0, "controller reset", timeoutMs);

  // Interrupts: MSI-X must be on before a CQ can be given a vector other than 0 (QEMU checks).
  const msixCount = dev.irqInfo(IrqIndex.MSIX).count;
  if (msixCount < 2) throw new VfioError(`the controller offers ${msixCount} MSI-X vectors; this example needs 2`);
  using irqs = dev.enableIrqs(IrqIndex.MSIX, { count: 2 });

  // DMA memory: one page per queue, one for identify data, one for a PRP list.
  const [ADMIN_SQ, ADMIN_CQ, IRQ_SQ, IRQ_CQ, POLL_SQ, POLL_CQ, IDENTIFY, PRP_LIST] = [0, 1, 2, 3, 4, 5, 6, 7];
  const pages = Array.from({ length: 8 }, () => dev.allocDma(PAGE, { hugepages: "never" }));
  const queue = (id: number, sq: number, cq: number, irq?: { set: IrqSet; vector: number }): QueuePair =>
    new QueuePair(id, pages[sq], pages[cq], depth, bar0, stride, irq);

  // Enable: admin queue sizes and bases, then CC with 4 KiB pages, NVM command set, 64/16-byte entries.
  bar0.write32(AQA, ((depth - 1) << 16) | (depth - 1));
  for (const [reg, page] of [[ASQ, ADMIN_SQ], [ACQ, ADMIN_CQ]]) {
    const bus = pages[page].busAddress(0);
    bar0.write32(reg, Number(bus & 0xffffffffn));
    bar0.write32(reg + 4, Number(bus >> 32n));
  }
  bar0.write32(CC, CC_IOCQES | CC_IOSQES | CC_EN);
  await waitStatus(bar0, CSTS_RDY, CSTS_RDY, "controller enable", timeoutMs);
  check(true, `controller enabled: admin queues of ${depth} entries at ${hex(pages[ADMIN_SQ].busAddress(0))}`);
  const admin = queue(0, ADMIN_SQ, ADMIN_CQ);
  const id = pages[IDENTIFY];

  try {
    // Identify Controller (CNS 1).
    await admin.run("identify controller", ADMIN_IDENTIFY, { prp1: id.busAddress(0), cdw: [1] });
    const vid = id.u8[0] | (id.u8[1] << 8);
    const mdts = id.u8[77];
    const nn = id.read32(516);
    const ctrl = {
      vid: hex(vid),
      ssvid: hex(id.u8[2] | (id.u8[3] << 8)),
      sn: ascii(id, 4, 20),
      mn: ascii(id, 24, 40),
      fr: ascii(id, 64, 8),
      mdts,
      cntlid: hex(id.u8[78] | (id.u8[79] << 8)),
      ver: hex(id.read32(80)),
      sqes: hex(id.u8[512]),
      cqes: hex(id.u8[513]),
      nn,
      subnqn: ascii(id, 768, 256),
    };
    report.controller = ctrl;
    log("NVME Identify Controller:");
    for (const [k, v] of Object.entries(ctrl)) log(`${k.padEnd(10)}: ${v}`);
    check(ctrl.sn.length > 0 && ctrl.mn.length > 0, `identify controller: "${ctrl.mn}" serial "${ctrl.sn}"`);
    if (nsid > nn) throw new VfioError(`namespace ${nsid} does not exist (the controller has ${nn})`);
    // MDTS: the largest transfer is 2^MDTS minimum-size pages (0: no limit; we then take 1 MiB at a time).
    const maxBytes = mdts ? Math.min(PAGE << mdts, 256 * PAGE) : 256 * PAGE;

    // Identify Namespace (CNS 0).
    id.fill(0);
    await admin.run("identify namespace", ADMIN_IDENTIFY, { nsid, prp1: id.busAddress(0), cdw: [0] });
    const nsze = id.read64(0);
    if (nsze === 0n) throw new VfioError(`namespace ${nsid} is not active (identify returned zeros)`);
    const flbas = id.u8[26];
    const nlbaf = id.u8[25] + 1;
    const lbaf = (i: number): { ms: number; lbads: number; rp: number } => {
      const w = id.read32(128 + 4 * i);
      return { ms: w & 0xffff, lbads: (w >>> 16) & 0xff, rp: (w >>> 24) & 3 };
    };
    const format = lbaf(flbas & 0xf);
    const blockSize = 2 ** format.lbads;
    const ns = {
      nsze: hex(nsze),
      ncap: hex(id.read64(8)),
      nuse: hex(id.read64(16)),
      nsfeat: hex(id.u8[24]),
      nlbaf: nlbaf - 1,
      flbas: hex(flbas),
      lbafs: Array.from({ length: nlbaf }, (_, i) => lbaf(i)),
      blockSize,
    };
    report.namespace = ns;
    log(`NVME Identify Namespace ${nsid}:`);
    for (const [k, v] of Object.entries(ns)) if (k !== "lbafs" && k !== "blockSize") log(`${k.padEnd(8)}: ${v}`);
    ns.lbafs.forEach((f, i) =>
      log(
        `lbaf ${String(i).padStart(2)} : ms:${f.ms} lbads:${f.lbads} rp:${f.rp}${
          i === (flbas & 0xf) ? " (in use)" : ""
        }`,
      )
    );
    check(true, `namespace ${nsid}: ${nsze} blocks of ${blockSize} bytes (${Number(nsze) * blockSize} bytes)`);
    if (format.ms !== 0) throw new VfioError(`the namespace's LBA format carries metadata; this example does not`);
    if (BigInt(lba + blocks) > nsze) {
      throw new VfioError(`blocks ${lba}..${lba + blocks - 1} are past the namespace end`);
    }

    // Two I/O queue pairs: 1 completes by MSI-X vector IO_VECTOR, 2 is polled (no interrupts).
    const nq = await admin.run("set features (number of queues)", ADMIN_SET_FEATURES, {
      cdw: [FEATURE_NUMBER_OF_QUEUES, (1 << 16) | 1],
    });
    log(`I/O queues granted: ${(nq.result & 0xffff) + 1} submission, ${(nq.result >>> 16) + 1} completion`);
    const qsize = (depth - 1) << 16;
    const io = [
      queue(1, IRQ_SQ, IRQ_CQ, { set: irqs, vector: IO_VECTOR }),
      queue(2, POLL_SQ, POLL_CQ),
    ];
    for (const q of io) {
      const ien = q.irq ? (q.irq.vector << 16) | 0b10 : 0;
      await admin.run(`create I/O CQ ${q.id}`, ADMIN_CREATE_IO_CQ, {
        prp1: q.cq.busAddress(0),
        cdw: [qsize | q.id, ien | 1],
      });
      await admin.run(`create I/O SQ ${q.id}`, ADMIN_CREATE_IO_SQ, {
        prp1: q.sq.busAddress(0),
        cdw: [qsize | q.id, (q.id << 16) | 1],
      });
    }
    check(true, `I/O queue pairs created: 1 on MSI-X vector ${IO_VECTOR}, 2 polled`);

    // Block I/O in chunks of at most maxBytes, one command at a time per queue.
    const bytes = blocks * blockSize;
    const transfer = async (q: QueuePair, opcode: number, buf: DmaBuffer): Promise<number> => {
      const t0 = performance.now();
      const perCommand = Math.floor(maxBytes / blockSize);
      for (let done = 0; done < blocks; done += perCommand) {
        const n = Math.min(perCommand, blocks - done);
        const start = BigInt(lba + done);
        const ptr = prps(buf, done * blockSize, n * blockSize, pages[PRP_LIST]);
        const what = `${opcode === NVM_READ ? "read" : "write"} of blocks ${start}+${n} on queue ${q.id}`;
        await q.run(what, opcode, { nsid, ...ptr, cdw: [Number(start & 0xffffffffn), Number(start >> 32n), n - 1] });
      }
      return performance.now() - t0;
    };
    const rate = (ms: number): string => `${ms.toFixed(1)} ms, ${(bytes / 1048576 / (ms / 1000)).toFixed(1)} MiB/s`;
    const firstByte = lba * blockSize;
    const chunks = Math.ceil(blocks / Math.floor(maxBytes / blockSize));
    // Two read buffers with different filler, so that "both queues read the same bytes" proves both DMAs landed.
    using polled = dev.allocDma(bytes, { hugepages }).fill(0xee);
    using irqd = dev.allocDma(bytes, { hugepages }).fill(0x11);
    log(
      `I/O: blocks ${lba}..${lba + blocks - 1} (${bytes} bytes, ${chunks} command(s) of at most ${maxBytes} bytes), ` +
        `buffers on ${polled.hugepage ? "2 MiB" : "4 KiB"} pages${polled.contiguous ? "" : ", not bus-contiguous"}`,
    );

    if (values.write) {
      using src = dev.allocDma(bytes, { hugepages });
      fillPattern(src.u32, firstByte, seed);
      const ms = await transfer(io[0], NVM_WRITE, src);
      await io[0].run("flush", NVM_FLUSH, { nsid });
      check(true, `wrote the pattern (seed ${hex(seed)}) and flushed, by interrupt (${rate(ms)})`);
    }

    const pollMs = await transfer(io[1], NVM_READ, polled);
    check(true, `read by polling (${rate(pollMs)})`);
    const irqBefore = io[0].interrupts;
    const irqMs = await transfer(io[0], NVM_READ, irqd);
    check(
      io[0].interrupts > irqBefore,
      `read by MSI-X interrupt (${io[0].interrupts - irqBefore} interrupts, ${rate(irqMs)})`,
    );
    const a = polled.u8.subarray(0, bytes);
    const b = irqd.u8.subarray(0, bytes);
    check(a.every((v, i) => v === b[i]), "both queues read the same bytes");
    const words = Array.from(polled.u32.subarray(0, 8), (w) => w.toString(16).padStart(8, "0")).join(" ");
    log(`LBA ${lba}: ${words} ...`);
    report.io = { lba, blocks, blockSize, chunks, pollMs, irqMs, interrupts: io[0].interrupts, firstWords: words };
    if (values.check || values.write) {
      const bad = findMismatch(polled.u32.subarray(0, bytes / 4), firstByte, seed);
      const where = bad < 0 ? "" : `: byte ${firstByte + 4 * bad} holds ${hex(polled.u32[bad])}, expected ` +
        hex(((firstByte + 4 * bad) ^ seed) >>> 0);
      check(bad < 0, `blocks ${lba}..${lba + blocks - 1} hold the pattern with seed ${hex(seed)}${where}`);
    }

    // Tidy up: delete the I/O queues (SQ before its CQ), then a normal shutdown so the data is on the medium.
    for (const q of io) {
      await admin.run(`delete I/O SQ ${q.id}`, ADMIN_DELETE_IO_SQ, { cdw: [q.id] });
      await admin.run(`delete I/O CQ ${q.id}`, ADMIN_DELETE_IO_CQ, { cdw: [q.id] });
    }
    bar0.write32(CC, (bar0.read32(CC) & ~(3 << 14)) | CC_SHN_NORMAL);
    await waitStatus(bar0, 3 << 2, CSTS_SHST_COMPLETE, "shutdown", timeoutMs);
    check(true, "I/O queues deleted, controller shut down");
  } finally {
    // Whatever happened, stop the controller before its queues and buffers are unmapped.
    bar0.write32(CC, 0);
  }
}

try {
  await main();
} catch (e) {
  check(false, `${e instanceof Error ? e.message : e}`);
}
const failures = checks.filter((c) => !c.ok).length;
if (json) console.log(JSON.stringify({ ...report, checks, ok: failures === 0 }, null, 2));
else console.log(failures ? `${failures} check(s) failed` : "all checks passed");
process.exitCode = failures ? 1 : 0;
