/**
 * What the example NIC drivers share, in the manner of ixy (Emmerich et al., "User Space Network Drivers"):
 * packet buffers carved from a DMA pool, a driver interface with batched receive and transmit, link status and
 * statistics.
 *
 * A packet buffer is one 2 KiB pool entry: {@linkcode HEADROOM} bytes of headroom (the virtio-net header goes at its
 * end), then the frame. Each entry has one {@linkcode Packet} object for its whole life, so receiving and sending
 * allocate nothing. Buffers of one port may be sent on another (all devices of a process share one IOMMU address
 * space); a driver gives a sent buffer back to the pool it came from. `open.ts` opens a port.
 *
 * ```ts
 * import type { Nic, Packet } from "./nic.ts";
 * declare const nic: Nic;
 * const bufs: Packet[] = new Array(32);
 * const n = nic.rxBatch(bufs, 32);
 * for (let i = 0; i < n; i++) bufs[i].free();
 * ```
 * @module
 */
import { hexDigits } from "../../lib/hex.ts";
import { type Device, type DmaPool, translatePages, VfioError } from "../../mod.ts";

/** Bytes per pool entry. */
export const ENTRY_SIZE = 2048;
/** Bytes in front of each frame, for a driver's per-packet header (virtio-net's 10 bytes sit at its end). */
export const HEADROOM = 64;
/** The largest frame a buffer holds (without the FCS). */
export const MAX_FRAME = ENTRY_SIZE - HEADROOM;

/** One packet buffer: a pool entry with its frame at {@linkcode data} and the frame's bus address. */
export class Packet {
  /** Frame length in bytes (set by the receiver, or by the program before sending). */
  length = 0;
  /** The pool the buffer belongs to. */
  readonly pool: PacketPool;
  /** Its index in the pool. */
  readonly index: number;
  /** The whole entry (headroom + frame). */
  readonly entry: Uint8Array;
  /** The frame: `entry` from {@linkcode HEADROOM} on, {@linkcode MAX_FRAME} bytes. */
  readonly data: Uint8Array;
  /** The bus address of `data[0]` (an IOVA, or a physical address without an IOMMU), as a number. */
  readonly bus: number;
  /**
   * The physical address of `data[0]`, for devices that bypass the IOMMU (legacy virtio); -1 until
   * {@linkcode PacketPool.translate} has looked it up.
   */
  phys = -1;

  constructor(pool: PacketPool, index: number, entry: Uint8Array, entryBus: number) {
    this.pool = pool;
    this.index = index;
    this.entry = entry;
    this.data = entry.subarray(HEADROOM);
    this.bus = entryBus + HEADROOM;
  }

  /** Gives the buffer back to its pool. */
  free(): void {
    this.pool.free(this);
  }
}

/**
 * Where a {@linkcode PacketPool}'s entries live and who hands them out: a {@linkcode DmaPool}, or a driver's own
 * allocator over its DMA memory (igb keeps its buffers on its queues' free stacks). Entries are
 * {@linkcode ENTRY_SIZE} bytes with the frame at {@linkcode HEADROOM}.
 */
export type PacketStore = Pick<
  DmaPool,
  "buffer" | "count" | "available" | "alloc" | "free" | "busAddress" | "offsetOf"
>;

/**
 * Packet buffers (ixy's mempool), one {@linkcode Packet} per entry, over a {@linkcode DmaPool} of the device or a
 * driver's {@linkcode PacketStore}.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { PacketPool } from "./nic.ts";
 * using dev = openDevice("0000:00:05.0");
 * const pool = new PacketPool(dev, 1024);
 * const p = pool.alloc()!;
 * p.data[0] = 0xff;
 * p.free();
 * ```
 */
export class PacketPool {
  readonly #pool: PacketStore;
  readonly #packets: Packet[] = [];

  /**
   * Allocates `count` buffers of {@linkcode ENTRY_SIZE} bytes in DMA memory of `dev` (freed with the device), or
   * wraps a driver's `store` (`count` is then its own).
   */
  constructor(source: Device | PacketStore, count = 0) {
    this.#pool = "allocDmaPool" in source ? source.allocDmaPool({ entrySize: ENTRY_SIZE, count }) : source;
    const u8 = this.#pool.buffer.u8;
    for (let i = 0; i < this.#pool.count; i++) {
      const offset = this.#pool.offsetOf(i);
      const entry = u8.subarray(offset, offset + ENTRY_SIZE);
      this.#packets.push(new Packet(this, i, entry, Number(this.#pool.busAddress(i))));
    }
  }

  /** Buffer `i` (0 .. size-1). */
  packet(i: number): Packet {
    return this.#packets[i];
  }

  /** The bus address of the first buffer's entry (an IOVA, or a physical address without an IOMMU). */
  get busAddress(): bigint {
    return this.#pool.busAddress(0);
  }

  /** Number of buffers. */
  get size(): number {
    return this.#packets.length;
  }

  /** Number of free buffers. */
  get available(): number {
    return this.#pool.available;
  }

  /** Takes a free buffer, or `null` when none is left. */
  alloc(): Packet | null {
    const i = this.#pool.alloc();
    return i === null ? null : this.#packets[i];
  }

  /** Takes up to `n` buffers into `out[0..]`; returns how many. */
  allocBatch(out: Packet[], n: number): number {
    let k = 0;
    for (; k < n; k++) {
      const i = this.#pool.alloc();
      if (i === null) break;
      out[k] = this.#packets[i];
    }
    return k;
  }

  /**
   * Looks up the physical address of every buffer (one pread of /proc/self/pagemap; needs root) and sets
   * {@linkcode Packet.phys}. Only devices that DMA around the IOMMU need it; called once, on first need.
   */
  translate(): void {
    const buffer = this.#pool.buffer;
    const pages = translatePages(buffer.vaddr, buffer.size); // one entry per base page
    const page = buffer.size / pages.length;
    for (const p of this.#packets) {
      const offset = this.#pool.offsetOf(p.index) + HEADROOM;
      p.phys = Number(pages[Math.floor(offset / page)]) + (offset % page);
    }
  }

  /** Gives a buffer back (a double free throws). */
  free(p: Packet): void {
    this.#pool.free(p.index);
  }
}

/** Link state as the device reports it. */
export interface LinkStatus {
  /** Link up. */
  up: boolean;
  /** Speed in Mbit/s, `null` when the device does not say (legacy virtio-net). */
  speedMbps: number | null;
}

/** Counters since the port was opened. */
export interface NicStats {
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
  /** Where they come from: the device's own counters, or the driver's count. */
  source: "device" | "driver";
}

/** A port driven from user space. */
export interface Nic extends Disposable {
  /** `"e1000e"` or `"virtio-net"`. */
  readonly driver: string;
  /** PCI address. */
  readonly address: string;
  /** The MAC address, `aa:bb:cc:dd:ee:ff`. */
  readonly mac: string;
  /** The pool the receive ring takes its buffers from (programs may take transmit buffers from it too). */
  readonly pool: PacketPool;
  /** Descriptors per receive / transmit ring. */
  readonly rxRingSize: number;
  readonly txRingSize: number;
  /** Queue pairs in use (receive queue `q` and transmit queue `q` for `q` in `0..queues-1`); 1 when the device has one. */
  readonly queues: number;
  /** Reads the link state. */
  link(): LinkStatus;
  /**
   * Receives up to `n` frames from receive queue `queue` (default 0) into `bufs[0..]`; returns how many. The caller
   * owns (and frees) them.
   */
  rxBatch(bufs: Packet[], n: number, queue?: number): number;
  /**
   * Queues `bufs[0..n)` for sending on transmit queue `queue` (default 0); returns how many fit in the ring. The
   * driver frees those once sent; the caller keeps the rest.
   */
  txBatch(bufs: Packet[], n: number, queue?: number): number;
  /**
   * Interrupt-driven receive (drivers that support it): arms receive queue `queue`'s interrupt (its MSI-X or MSI
   * vector), resolves `true` when it fires or `false` after `timeoutMs`, and disarms it again. A frame that arrived
   * between the last empty `rxBatch` and the arming also fires it, so poll → `waitRx` → poll loses nothing.
   */
  waitRx?(queue: number, timeoutMs: number): Promise<boolean>;
  /** Frees sent buffers and returns how many transmit descriptors are still in flight. */
  txPending(): number;
  /** Counters since open (device counters are read, and cleared on the device, by this call). */
  stats(): NicStats;
  /** Stops receiving and sending (idempotent). Stop every port before closing any of them. */
  stop(): void;
  /** Stops the port and closes its device and DMA memory (idempotent). */
  close(): void;
}

/** `52:54:00:ab:00:05` from six bytes. */
export function formatMac(bytes: ArrayLike<number>): string {
  return Array.from(bytes, (b) => hexDigits(b, 2)).join(":");
}

/** Six bytes from `52:54:00:ab:00:05`; throws on anything else. */
export function parseMac(text: string): Uint8Array {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(text);
  if (!m) throw new VfioError(`"${text}" is not a MAC address`, { remedy: "write it as 52:54:00:12:34:56" });
  return Uint8Array.from(m.slice(1), (h) => parseInt(h, 16));
}

/**
 * Adaptive polling for small machines: a poll loop reports whether each round did any work; after `idleMs` of
 * rounds without work, {@linkcode pause} sleeps 1 ms, handing the CPU to whoever feeds the port (another process,
 * or the emulator on a one-CPU guest). With `busy`, it never sleeps (ixy's pure busy polling).
 *
 * ```ts
 * import { Backoff } from "./nic.ts";
 * const backoff = new Backoff({ busy: false });
 * for (let round = 0; round < 3; round++) {
 *   const didWork = false; // e.g. rxBatch() > 0
 *   if (backoff.idle(didWork)) await backoff.pause();
 * }
 * ```
 */
export class Backoff {
  readonly #busy: boolean;
  readonly #idleMs: number;
  #since = -1;
  /** Number of naps taken. */
  naps = 0;

  constructor(options: { busy?: boolean; idleMs?: number } = {}) {
    this.#busy = options.busy ?? false;
    this.#idleMs = options.idleMs ?? 0.2;
  }

  /** Records one round; true when the loop has been idle long enough to {@linkcode pause}. */
  idle(didWork: boolean): boolean {
    if (didWork || this.#busy) {
      this.#since = -1;
      return false;
    }
    const now = performance.now();
    if (this.#since < 0) this.#since = now;
    return now - this.#since >= this.#idleMs;
  }

  /** Sleeps 1 ms (the process blocks in the event loop, so the CPU is free meanwhile). */
  async pause(): Promise<void> {
    this.naps++;
    this.#since = -1;
    await new Promise((r) => setTimeout(r, 1));
  }
}
