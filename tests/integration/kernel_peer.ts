// The kernel as a NIC's peer, for guest tests of any example driver (e1000e, igb, virtio-net): a port on the same
// QEMU hub that the rig left on its kernel driver sends and receives frames through an AF_PACKET socket
// (fixtures/af_packet_peer.py), on a private ethertype, with random sizes (60..1514) and random payloads. What one
// side sent is compared byte for byte, in order, with what the other side received.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Nic, Packet } from "../../examples/nic/nic.ts";
import { parseMac } from "../../examples/nic/nic.ts";
import { guest } from "./guest.ts";

/** IEEE 802 "local experimental" ethertype: nothing else in the guest uses it. */
export const PEER_ETHERTYPE = 0x88b5;
const SCRIPT = join(import.meta.dirname!, "fixtures", "af_packet_peer.py");

/** A port the guest kernel drives. */
export interface KernelPort {
  address: string;
  iface: string;
  mac: string;
}

/**
 * A port on `nicAddress`'s hub that the rig left on its kernel driver, brought up (its carrier on) before this
 * resolves; undefined when the hub has none.
 */
export async function kernelPortOnHub(nicAddress: string): Promise<KernelPort | undefined> {
  const hub = guest.hubs.find((h) => h.includes(nicAddress));
  const address = hub?.find((a) => guest.kernelDevices.includes(a));
  if (!address) return undefined;
  const iface = readdirSync(`/sys/bus/pci/devices/${address}/net`)[0];
  const up = spawnSync("ip", ["link", "set", "dev", iface, "up"], { encoding: "utf8" });
  if (up.status !== 0) throw new Error(`ip link set ${iface} up: ${up.stderr}`);
  const mac = readFileSync(`/sys/class/net/${iface}/address`, "utf8").trim();
  const t0 = Date.now();
  while (readFileSync(`/sys/class/net/${iface}/operstate`, "utf8").trim() !== "up") {
    if (Date.now() - t0 > 15_000) throw new Error(`${iface} (${address}) has no carrier after 15 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { address, iface, mac };
}

/** The kernel's receive or transmit packet counter of an interface. */
export function kernelCounter(port: KernelPort, name: "rx_packets" | "tx_packets"): number {
  return Number(readFileSync(`/sys/class/net/${port.iface}/statistics/${name}`, "utf8"));
}

/** Frames as the peer script writes them: a 2-byte little-endian length, then the frame. */
function readFrames(path: string): Uint8Array[] {
  const all = readFileSync(path);
  const out: Uint8Array[] = [];
  for (let at = 0; at + 2 <= all.length;) {
    const len = all[at] | (all[at + 1] << 8);
    out.push(new Uint8Array(all.subarray(at + 2, at + 2 + len)));
    at += 2 + len;
  }
  return out;
}

/** How two frame lists compare: in order, byte for byte. */
export interface FrameComparison {
  intact: number;
  damaged: number;
  missing: number;
  extra: number;
  first: string | null;
}

/** Compares what was sent with what arrived, position by position. */
export function compareFrames(sent: Uint8Array[], received: Uint8Array[]): FrameComparison {
  const r: FrameComparison = { intact: 0, damaged: 0, missing: 0, extra: 0, first: null };
  for (let i = 0; i < Math.max(sent.length, received.length); i++) {
    const s = sent[i], g = received[i];
    if (!g) r.missing++;
    else if (!s) r.extra++;
    else if (s.length === g.length && s.every((b, j) => b === g[j])) r.intact++;
    else {
      r.damaged++;
      r.first ??= `frame ${i}: sent ${s.length} bytes, got ${g.length}`;
    }
  }
  return r;
}

interface Child {
  /** Resolves with the script's last stdout line once it exits (rejects on a non-zero exit). */
  done: Promise<string>;
  /** Resolves once the script printed `ready` (receivers). */
  ready: Promise<void>;
}

function python(args: string[]): Child {
  const child = spawn("python3", [SCRIPT, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => readyResolve = r);
  child.stdout!.on("data", (d: Uint8Array) => {
    out += new TextDecoder().decode(d);
    if (out.includes("ready")) readyResolve();
  });
  child.stderr!.on("data", (d: Uint8Array) => err += new TextDecoder().decode(d));
  const done = new Promise<string>((resolve, reject) => {
    child.on("close", (code: number | null) => {
      readyResolve();
      if (code === 0) resolve(out.trim().split("\n").at(-1) ?? "");
      else reject(new Error(`af_packet_peer.py ${args[0]} exited ${code}: ${err}`));
    });
  });
  return { done, ready };
}

/** Options of the peer checks. */
export interface PeerOptions {
  /** Frames (default 300). */
  count?: number;
  /** Pause between frames in ms: the paced rate (default 2). */
  intervalMs?: number;
  /** PRNG seed (default 1). */
  seed?: number;
  /** Receive with `nic.waitRx` between empty batches instead of 1 ms sleeps. */
  interrupts?: boolean;
  /** Give up after this long without a frame (default 10 s). */
  idleTimeoutMs?: number;
}

/** What a peer check saw. */
export interface PeerResult {
  sent: Uint8Array[];
  received: Uint8Array[];
  comparison: FrameComparison;
  /** Kernel counter delta (rx_packets of the kernel port for nic → kernel, tx_packets for kernel → nic). */
  kernelCount: number;
  /** `waitRx` calls that resolved true (with `interrupts`). */
  wakeups: number;
}

/** The kernel sends random frames to `nic`; `nic` receives them (polling, or with waitRx) and keeps copies. */
export async function kernelToNic(nic: Nic, port: KernelPort, options: PeerOptions = {}): Promise<PeerResult> {
  const count = options.count ?? 300, idle = options.idleTimeoutMs ?? 10_000;
  const dir = mkdtempSync(join(tmpdir(), "peer-"));
  try {
    const before = kernelCounter(port, "tx_packets");
    const file = join(dir, "sent");
    const sender = python([
      "send",
      port.iface,
      nic.mac,
      String(PEER_ETHERTYPE),
      String(count),
      String(options.intervalMs ?? 2),
      String(options.seed ?? 1),
      file,
    ]);
    let exited = false;
    sender.done.then(() => exited = true, () => exited = true);
    const received: Uint8Array[] = [];
    const bufs: Packet[] = new Array(32);
    let wakeups = 0, last = performance.now();
    while (received.length < count) {
      const n = nic.rxBatch(bufs, 32);
      for (let i = 0; i < n; i++) {
        const p = bufs[i];
        if (p.length >= 14 && ((p.data[12] << 8) | p.data[13]) === PEER_ETHERTYPE) {
          received.push(p.data.slice(0, p.length));
        }
        p.free();
      }
      if (n > 0) {
        last = performance.now();
        continue;
      }
      if (exited && performance.now() - last > idle) break;
      if (options.interrupts) {
        if (await nic.waitRx!(0, 100)) wakeups++;
      } else await new Promise((r) => setTimeout(r, 1));
    }
    await sender.done;
    const sent = readFrames(file);
    return {
      sent,
      received,
      comparison: compareFrames(sent, received),
      kernelCount: kernelCounter(port, "tx_packets") - before,
      wakeups,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A small seeded PRNG (xorshift32) for reproducible frames. */
function xorshift(seed: number): () => number {
  let x = seed | 0 || 1;
  return (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** `nic` sends random frames to the kernel port, paced; the kernel receives them through AF_PACKET. */
export async function nicToKernel(nic: Nic, port: KernelPort, options: PeerOptions = {}): Promise<PeerResult> {
  const count = options.count ?? 300, interval = options.intervalMs ?? 2;
  const dir = mkdtempSync(join(tmpdir(), "peer-"));
  try {
    const before = kernelCounter(port, "rx_packets");
    const file = join(dir, "received");
    const receiver = python(["recv", port.iface, String(PEER_ETHERTYPE), String(count), "10", file]);
    await receiver.ready;
    const rand = xorshift(options.seed ?? 1);
    const head = new Uint8Array([
      ...parseMac(port.mac),
      ...parseMac(nic.mac),
      PEER_ETHERTYPE >> 8,
      PEER_ETHERTYPE & 255,
    ]);
    const sent: Uint8Array[] = [];
    for (let seq = 0; seq < count; seq++) {
      const size = 60 + (rand() % (1514 - 60 + 1));
      const frame = new Uint8Array(size);
      frame.set(head);
      new DataView(frame.buffer).setUint32(14, seq);
      for (let i = 18; i < size; i++) frame[i] = rand() & 255;
      sent.push(frame);
      const p = nic.pool.alloc();
      if (!p) throw new Error(`${nic.driver}: no free buffer`);
      p.data.set(frame);
      p.length = size;
      while (nic.txBatch([p], 1) === 0) await new Promise((r) => setTimeout(r, 1));
      if (interval > 0) await new Promise((r) => setTimeout(r, interval));
    }
    const t0 = performance.now();
    while (nic.txPending() > 0 && performance.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 1));
    await receiver.done;
    const received = readFrames(file);
    return {
      sent,
      received,
      comparison: compareFrames(sent, received),
      kernelCount: kernelCounter(port, "rx_packets") - before,
      wakeups: 0,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
