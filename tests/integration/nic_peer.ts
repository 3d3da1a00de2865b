/**
 * Peer checks for the example NIC drivers against a driver nobody here wrote: the guest kernel's own driver on
 * another port of the same QEMU hub, reached through an AF_PACKET socket (`fixtures/nic_peer.py`, run by the
 * guest's python3). Any {@linkcode Nic} works; a test opens its port and calls:
 *
 * - {@linkcode kernelToVfio}: the kernel sends frames of random sizes (60..1514) and random payloads, half IPv4/UDP
 *   from random source ports (RSS spreads them over receive queues), half on the private EtherType 0x88b5; the
 *   driver must receive every one once and intact, and the result says on which receive queue each arrived (with
 *   `interrupts`, the driver sleeps on its receive interrupts between frames: `waitRx` against a real sender).
 * - {@linkcode vfioToKernel}: the driver sends such frames (EtherType 0x88b5) from each of its transmit queues in
 *   turn, paced; the kernel must count every one once and intact.
 *
 * ```ts ignore
 * import { openNic, waitForLink } from "../../examples/nic/open.ts";
 * import { findKernelPeer, kernelToVfio, vfioToKernel } from "./nic_peer.ts";
 * using nic = openNic("0000:00:03.0", { queues: 2 });
 * await waitForLink(nic);
 * const peer = findKernelPeer(nic.address)!;
 * const got = await kernelToVfio(nic, peer, { count: 500, rate: 250 });
 * const sent = await vfioToKernel(nic, peer, { count: 500, rate: 250 });
 * ```
 * @module
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { IdleLoop } from "../../examples/nic/idle.ts";
import type { Nic, Packet } from "../../examples/nic/nic.ts";
import { guest } from "./guest.ts";

/** The guest's python3 (the host's, through the guest's chroot). */
export const PYTHON = "/usr/bin/python3";
const SCRIPT = fileURLToPath(new URL("./fixtures/nic_peer.py", import.meta.url));
const ETHERTYPE = 0x88b5;
const PORT = 0x88b5;
const MAGIC = [0x56, 0x54, 0x53, 0x50]; // "VTSP"

/** A NIC on its kernel driver: PCI address, interface name, MAC. */
export interface KernelPeer {
  address: string;
  iface: string;
  mac: string;
}

/** The first kernel-driven NIC on the same hub as `address` with a network interface, or null. */
export function findKernelPeer(address: string): KernelPeer | null {
  const hub = guest.hubs.find((h) => h.includes(address));
  for (const a of hub ?? []) {
    if (a === address || !guest.kernelDevices.includes(a)) continue;
    const dir = `/sys/bus/pci/devices/${a}/net`;
    if (!existsSync(dir)) continue;
    const iface = readdirSync(dir)[0];
    if (!iface) continue;
    const mac = readFileSync(`${dir}/${iface}/address`, "utf8").trim();
    return { address: a, iface, mac };
  }
  return null;
}

/** Runs a command; resolves its exit code and output. `onLine` sees stdout line by line as it comes. */
function run(
  argv: string[],
  onLine: (line: string) => void = () => {},
): { done: Promise<{ code: number | null; out: string }> } {
  const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  let out = "", partial = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
    partial += d;
    let nl;
    while ((nl = partial.indexOf("\n")) >= 0) {
      onLine(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => out += d);
  const done = new Promise<{ code: number | null; out: string }>((resolve) => {
    child.on("close", (code) => resolve({ code, out }));
    child.on("error", (e) => resolve({ code: -1, out: `${out}${e.message}` }));
  });
  return { done };
}

/** Brings the peer's interface up (`ip link set dev IFACE up`), so it sends and receives. */
export async function linkUp(peer: KernelPeer): Promise<void> {
  const r = await run(["ip", "link", "set", "dev", peer.iface, "up"]).done;
  if (r.code !== 0) throw new Error(`ip link set dev ${peer.iface} up: ${r.out}`);
  const t0 = Date.now();
  while (readFileSync(`/sys/class/net/${peer.iface}/carrier`, "utf8").trim() !== "1") {
    if (Date.now() - t0 > 10_000) throw new Error(`${peer.iface}: no carrier after 10 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 (as zlib's crc32) of `b[from..to)`. */
export function crc32(b: Uint8Array, from: number, to: number): number {
  let c = 0xffffffff;
  for (let i = from; i < to; i++) c = CRC_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Where a test frame's payload starts (after Ethernet, or after IPv4 + UDP to port 0x88b5); -1 for other frames. */
function payloadOffset(f: Uint8Array, length: number): number {
  const et = (f[12] << 8) | f[13];
  if (et === ETHERTYPE) return 14;
  if (et === 0x0800 && length >= 42 && f[23] === 17 && ((f[36] << 8) | f[37]) === PORT) return 42;
  return -1;
}

/** Checks one received frame: its sequence number when it is an intact test frame, -1 when damaged, -2 when foreign. */
export function checkFrame(f: Uint8Array, length: number): number {
  const off = payloadOffset(f, length);
  if (off < 0 || length < off + 14 || MAGIC.some((m, i) => f[off + i] !== m)) return -2;
  const dv = new DataView(f.buffer, f.byteOffset, length);
  const seq = dv.getUint32(off + 4), size = dv.getUint16(off + 8), crc = dv.getUint32(off + 10);
  if (size !== length || crc32(f, off + 14, length) !== crc) return -1;
  return seq;
}

/** Writes test frame `seq` of `size` bytes on EtherType 0x88b5 with random payload into `f`. */
export function writeFrame(f: Uint8Array, seq: number, size: number, dst: Uint8Array, src: Uint8Array): void {
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = ETHERTYPE >> 8;
  f[13] = ETHERTYPE & 0xff;
  f.set(MAGIC, 14);
  for (let i = 28; i < size; i++) f[i] = (Math.random() * 256) | 0;
  const dv = new DataView(f.buffer, f.byteOffset, size);
  dv.setUint32(18, seq);
  dv.setUint16(22, size);
  dv.setUint32(24, crc32(f, 28, size));
}

function macBytes(mac: string): Uint8Array {
  return Uint8Array.from(mac.split(":"), (h) => parseInt(h, 16));
}

/** What the driver received from the kernel. */
export interface KernelToVfioResult {
  /** Distinct intact test frames received. */
  received: number;
  duplicates: number;
  damaged: number;
  /** Other frames (the kernel's own traffic). */
  foreign: number;
  /** Test frames per receive queue. */
  perQueue: number[];
  /** With `interrupts`: sleeps that an interrupt ended. */
  wakeups: number;
  /** The sender's exit code and output. */
  senderCode: number | null;
  senderOut: string;
}

/** Options of the peer checks. */
export interface PeerOptions {
  /** Frames to send (default 500). */
  count?: number;
  /** Frames per second (default 250). */
  rate?: number;
  /** Give up after this many milliseconds (default 60 000). */
  timeoutMs?: number;
  /** kernelToVfio: receive interrupt-driven (IdleLoop over every receive queue; the driver needs waitRx). */
  interrupts?: boolean;
}

/** The kernel sends `count` random test frames to `nic`; the driver receives on every queue and checks them. */
export async function kernelToVfio(nic: Nic, peer: KernelPeer, options: PeerOptions = {}): Promise<KernelToVfioResult> {
  const count = options.count ?? 500, rate = options.rate ?? 250, timeoutMs = options.timeoutMs ?? 60_000;
  const seed = Math.floor(Math.random() * 2 ** 31);
  const sender = run([PYTHON, SCRIPT, "send", peer.iface, nic.mac, `${count}`, `${rate}`, `${seed}`]);
  let senderDone = false;
  const senderResult = sender.done.then((r) => (senderDone = true, r));
  const seen = new Uint8Array(count);
  const r: KernelToVfioResult = {
    received: 0,
    duplicates: 0,
    damaged: 0,
    foreign: 0,
    perQueue: new Array(nic.queues).fill(0),
    wakeups: 0,
    senderCode: null,
    senderOut: "",
  };
  const bufs: Packet[] = new Array(32);
  const rxQueues = Array.from({ length: nic.queues }, (_, queue) => ({ nic, queue }));
  const idle = new IdleLoop(rxQueues, { interrupts: options.interrupts });
  const t0 = Date.now();
  let doneAt = 0;
  while (r.received < count && Date.now() - t0 < timeoutMs) {
    let n = 0;
    for (let q = 0; q < nic.queues; q++) {
      const k = nic.rxBatch(bufs, 32, q);
      n += k;
      for (let i = 0; i < k; i++) {
        const seq = checkFrame(bufs[i].data, bufs[i].length);
        bufs[i].free();
        if (seq === -2) r.foreign++;
        else if (seq < 0 || seq >= count) r.damaged++;
        else if (seen[seq]) r.duplicates++;
        else {
          seen[seq] = 1;
          r.received++;
          r.perQueue[q]++;
        }
      }
    }
    if (senderDone && n === 0) {
      doneAt ||= Date.now();
      if (Date.now() - doneAt > 2000) break; // the sender finished and nothing came for 2 s
    }
    if (idle.idle(n > 0)) await idle.sleep(50);
  }
  await idle.settle();
  r.wakeups = idle.stats.wakeups;
  const s = await senderResult;
  r.senderCode = s.code;
  r.senderOut = s.out;
  return r;
}

/** What the kernel counted of the driver's frames. */
export interface VfioToKernelResult {
  /** The kernel's JSON summary: received, duplicates, damaged, foreign, missing (first 20). */
  kernel: { received: number; duplicates: number; damaged: number; foreign: number; missing: number[] } | null;
  /** Frames the driver sent from each transmit queue. */
  perQueue: number[];
  receiverCode: number | null;
  receiverOut: string;
}

/** The kernel's receiver summary. */
type KernelSummary = { received: number; duplicates: number; damaged: number; foreign: number; missing: number[] };

/**
 * Starts the kernel's receiver on `iface` and waits until its socket is bound; `early` is set when it exited first.
 * `summary()` waits for it to finish and parses its JSON line (null if there is none).
 */
async function startReceiver(iface: string, count: number, timeoutMs: number): Promise<{
  early: { code: number | null; out: string } | null;
  summary: () => Promise<{ kernel: KernelSummary | null; code: number | null; out: string }>;
}> {
  let ready!: () => void;
  const isReady = new Promise<void>((r) => ready = r);
  const receiver = run([PYTHON, SCRIPT, "recv", iface, `${count}`, `${timeoutMs / 1000}`], (line) => {
    if (line.trim() === "ready") ready();
  });
  const early = await Promise.race([isReady.then(() => null), receiver.done]);
  const summary = async (): Promise<{ kernel: KernelSummary | null; code: number | null; out: string }> => {
    const done = await receiver.done;
    let kernel = null;
    try {
      kernel = JSON.parse(done.out.trim().split("\n").pop() ?? "");
    } catch {
      // left null: the output says why
    }
    return { kernel, code: done.code, out: done.out };
  };
  return { early, summary };
}

/** The driver sends `count` random test frames (each transmit queue in turn) to the kernel, which counts them. */
export async function vfioToKernel(nic: Nic, peer: KernelPeer, options: PeerOptions = {}): Promise<VfioToKernelResult> {
  const count = options.count ?? 500, rate = options.rate ?? 250, timeoutMs = options.timeoutMs ?? 60_000;
  const { early, summary } = await startReceiver(peer.iface, count, timeoutMs);
  if (early) return { kernel: null, perQueue: [], receiverCode: early.code, receiverOut: early.out };
  const dst = macBytes(peer.mac), src = macBytes(nic.mac);
  const perQueue: number[] = new Array(nic.queues).fill(0);
  const t0 = performance.now();
  for (let seq = 0; seq < count;) {
    const due = t0 + (seq * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const p = nic.pool.alloc();
    if (!p) {
      nic.txPending(); // reclaim sent buffers
      await new Promise((r) => setTimeout(r, 1));
      continue;
    }
    const size = 60 + Math.floor(Math.random() * (1514 - 60 + 1));
    writeFrame(p.data, seq, size, dst, src);
    p.length = size;
    const q = seq % nic.queues;
    if (nic.txBatch([p], 1, q) === 1) {
      perQueue[q]++;
      seq++;
    } else {
      p.free();
      await new Promise((r) => setTimeout(r, 1));
    }
  }
  const t1 = Date.now();
  while (nic.txPending() > 0 && Date.now() - t1 < 2000) await new Promise((r) => setTimeout(r, 1));
  const done = await summary();
  return { kernel: done.kernel, perQueue, receiverCode: done.code, receiverOut: done.out };
}

/** What {@linkcode kernelToKernel} saw: the receiving kernel's summary (null if it printed none) and both outputs. */
export interface KernelToKernelResult {
  kernel: KernelSummary | null;
  senderCode: number | null;
  receiverCode: number | null;
  out: string;
}

/**
 * One kernel port sends `count` test frames to another, through whatever sits between them (e.g. examples/fwd.ts
 * across two hubs); the receiving kernel counts them once and intact.
 */
export async function kernelToKernel(
  from: KernelPeer,
  to: KernelPeer,
  options: PeerOptions = {},
): Promise<KernelToKernelResult> {
  const count = options.count ?? 500, rate = options.rate ?? 250, timeoutMs = options.timeoutMs ?? 60_000;
  const { early, summary } = await startReceiver(to.iface, count, timeoutMs);
  if (early) return { kernel: null, senderCode: null, receiverCode: early.code, out: early.out };
  const seed = Math.floor(Math.random() * 2 ** 31);
  const sent = await run([PYTHON, SCRIPT, "send", from.iface, to.mac, `${count}`, `${rate}`, `${seed}`]).done;
  const done = await summary();
  return { kernel: done.kernel, senderCode: sent.code, receiverCode: done.code, out: `${sent.out}${done.out}` };
}
