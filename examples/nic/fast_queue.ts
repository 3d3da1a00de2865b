/**
 * NIC queue pairs on the library's fast path ({@linkcode Poller.queue}: the C poll helper's RX refill and TX post
 * when it is loaded, its TypeScript twin when not): one call per batch reads the receive write-backs, stores each
 * frame's length and re-arms the slots; one call per batch cleans the transmit ring in groups of 32 (one done-bit
 * read each, as ixy does) and writes the data descriptors. Used by igb (82576 advanced descriptors) and e1000e
 * (82574 legacy descriptors); each driver gives its descriptor format ({@linkcode DescriptorFormat}) and programs
 * its own queue registers.
 *
 * Memory: one DMA buffer per port holds, for each queue pair, its two 4 KiB rings, the queue's state block and
 * its own buffers (2 KiB entries, the frame {@linkcode HEADROOM} bytes in; the header's first 16 bytes hold the
 * bus address and length the helper uses). {@linkcode QueuePairs} is the port's {@linkcode PacketStore}: a
 * program's `pool.alloc()` takes a buffer from the pair with the most free ones, `free()` returns it to its own
 * pair. A queue transmits only its own buffers (its descriptors are written from buffer numbers in its own area):
 * a frame in another pair's or another port's buffer is copied into one of the pair's buffers, and the original
 * freed once queued.
 *
 * ```ts
 * import { openDevice } from "../../mod.ts";
 * import { QueuePairs } from "./fast_queue.ts";
 * import { PacketPool } from "./nic.ts";
 * using dev = openDevice("0000:00:07.0");
 * const format = { txCmd: 0x0b000000, txLengthShift: 16, rxStatusOffset: 12, rxLengthOffset: 8, rxDone: 1, rxEop: 2 };
 * const store = new QueuePairs(dev, 1, 1024, format);
 * const pool = new PacketPool(store);
 * store.attach(pool);
 * console.log(store.count, pool.available);
 * ```
 * @module
 */
import {
  type Device,
  type DmaBuffer,
  type PacketQueue,
  Poller,
  type QueueLayout,
  queueStateBytes,
  type Region,
  VfioError,
} from "../../mod.ts";
import { ENTRY_SIZE, HEADROOM, type Packet, type PacketPool, type PacketStore } from "./nic.ts";

/**
 * A device's 16-byte descriptor format, as {@linkcode QueueLayout} describes it: the bits ORed with the length into
 * the transmit word at 8, where the length also goes in the word at 12, and where the receive write-back keeps its
 * status and length.
 */
export type DescriptorFormat = Pick<
  QueueLayout,
  "txCmd" | "txLengthShift" | "rxStatusOffset" | "rxLengthOffset" | "rxDone" | "rxEop"
>;

/** The tail and transmit head registers of one queue pair (byte offsets in the BAR). */
export interface PairRegs {
  rdt: number;
  tdt: number;
  tdh: number;
}

const DESC_SIZE = 16;
const PAGE = 4096;
const TX_CLEAN_BATCH = 32; // ixy's group: one DD read frees 32 descriptors
const ENTRY_WORDS = ENTRY_SIZE / 4;
const LENGTH_WORD = 3; // the helper keeps a frame's length at byte 12 of its buffer header
const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/** One queue pair's receive and transmit on a {@linkcode PacketQueue}, with its counters. */
export class QueuePair {
  /** Frames and bytes received and queued for sending on this pair (the driver's count). */
  rxPackets = 0;
  rxBytes = 0;
  txPackets = 0;
  txBytes = 0;
  /** Frames from another pair's or port's buffers copied into this pair's before sending. */
  copied = 0;
  /** The library's queue (layout, frames, tails). */
  readonly queue: PacketQueue;
  /** Pool index of this pair's buffer 0. */
  readonly first: number;
  readonly #mem: DmaBuffer;
  readonly #u32: Uint32Array;
  readonly #headers: number; // word index of buffer 0's header
  readonly #ring: number;
  #pool: PacketPool | null = null;
  #inUse: Uint8Array | null = null;
  #bar: Region | null = null;
  #rdt = 0;
  #tdt = 0;
  #tdh = 0;

  constructor(mem: DmaBuffer, queue: PacketQueue, first: number) {
    this.#mem = mem;
    this.#u32 = mem.u32;
    this.queue = queue;
    this.first = first;
    this.#headers = queue.layout.buffers >>> 2;
    this.#ring = queue.layout.ringSize;
  }

  /** Binds the pair to the port's pool and its in-use marks (once, before any frame). */
  attach(pool: PacketPool, inUse: Uint8Array): void {
    this.#pool = pool;
    this.#inUse = inUse;
  }

  /** The receive ring's bus address (for the base registers). */
  get rxRing(): bigint {
    return this.#mem.busAddress(this.queue.layout.rxRing);
  }

  /** The transmit ring's bus address. */
  get txRing(): bigint {
    return this.#mem.busAddress(this.queue.layout.txRing);
  }

  /**
   * Binds the pair to its tail and head registers once the driver has programmed the rings (base, length, head and
   * tail 0, enabled), and hands the device every receive descriptor but one (the tail register).
   */
  start(bar: Region, regs: PairRegs): void {
    this.#bar = bar;
    this.#rdt = regs.rdt;
    this.#tdt = regs.tdt;
    this.#tdh = regs.tdh;
    bar.write32(regs.rdt, this.queue.rxTail);
  }

  /** Whether the next receive descriptor holds a frame (done bit set): what `waitRx` checks before sleeping. */
  ready(): boolean {
    const l = this.queue.layout, head = (this.queue.rxTail + 1) % this.#ring;
    return (this.#mem.read32(l.rxRing + head * DESC_SIZE + l.rxStatusOffset) & l.rxDone) !== 0;
  }

  /** Takes up to `n` frames into `bufs[0..]` (the caller owns and frees them); returns how many. */
  rx(bufs: Packet[], n: number): number {
    const q = this.queue, got = q.receive(n < this.#ring ? n : this.#ring);
    if (got === 0) return 0;
    this.#bar!.write32(this.#rdt, q.rxTail); // hand the re-armed descriptors back
    const frames = q.frames, u32 = this.#u32, pool = this.#pool!, inUse = this.#inUse!, first = this.first;
    let bytes = 0;
    for (let i = 0; i < got; i++) {
      const b = frames[i], p = pool.packet(first + b);
      p.length = u32[this.#headers + b * ENTRY_WORDS + LENGTH_WORD];
      bytes += p.length;
      inUse[first + b] = 1;
      bufs[i] = p;
    }
    this.rxPackets += got;
    this.rxBytes += bytes;
    return got;
  }

  /**
   * Queues `bufs[0..n)`; returns how many fit. The pair frees those once sent (a copied frame's original at once);
   * the caller keeps the rest.
   */
  tx(bufs: Packet[], n: number): number {
    const q = this.queue, frames = q.frames, u32 = this.#u32, pool = this.#pool!, first = this.first;
    const count = q.layout.bufferCount, max = n < this.#ring - 1 ? n : this.#ring - 1;
    let k = 0, copies = 0;
    for (; k < max; k++) {
      const p = bufs[k];
      let b = p.pool === pool ? p.index - first : -1;
      if (b < 0 || b >= count) { // another pair's or port's buffer: only this pair's buffers fit its descriptors
        b = q.alloc();
        if (b < 0) break;
        pool.packet(first + b).data.set(p.data.subarray(0, p.length));
        copies++;
      }
      u32[this.#headers + b * ENTRY_WORDS + LENGTH_WORD] = p.length;
      frames[k] = b;
    }
    const sent = q.transmit(0, k);
    if (sent > 0) this.#bar!.write32(this.#tdt, q.txTail);
    // transmit put frames[sent..k) on the free stack: take them back (the last one is on top), keep the caller's
    // own buffers out and return the copies after.
    for (let i = k; i-- > sent;) {
      if (q.alloc() !== frames[i]) throw new VfioError("the transmit queue's free stack is out of order");
    }
    const inUse = this.#inUse!;
    let bytes = 0;
    for (let i = 0; i < k; i++) {
      const p = bufs[i], own = p.pool === pool && p.index - first === frames[i];
      if (i >= sent) {
        if (!own) q.release(frames[i]);
        continue;
      }
      bytes += p.length;
      if (own) inUse[p.index] = 0;
      else p.free();
    }
    this.copied += copies;
    this.txPackets += sent;
    this.txBytes += bytes;
    return sent;
  }

  /** Frees the buffers of sent groups; returns how many descriptors the device has not processed yet (TDH). */
  pending(): number {
    const q = this.queue;
    q.transmit(0, 0);
    return (q.txTail - this.#bar!.read32(this.#tdh) + this.#ring) % this.#ring;
  }
}

/** A port's queue pairs and their buffers in one DMA buffer: the port's {@linkcode PacketStore}. */
export class QueuePairs implements PacketStore {
  /** The DMA memory of every pair (rings, state blocks, buffers). */
  readonly buffer: DmaBuffer;
  /** Buffers of all pairs. */
  readonly count: number;
  /** The queue pairs. */
  readonly pairs: QueuePair[] = [];
  readonly #perPair: number;
  readonly #offsets: number[] = []; // offset of each pair's buffer 0
  readonly #inUse: Uint8Array;

  /**
   * Allocates `pairs` queue pairs with 256-descriptor rings in `format` and `perPair` buffers each (more than 512,
   * so the two rings never hold them all) in DMA memory of `dev`, and prepares their queues.
   */
  constructor(dev: Device, pairs: number, perPair: number, format: DescriptorFormat, ringSize = 256) {
    if (!(Number.isInteger(perPair) && perPair > 2 * ringSize && ringSize * DESC_SIZE === PAGE)) {
      throw new VfioError(`${perPair} buffers per queue pair with ${ringSize}-descriptor rings`, {
        remedy: `use 256-descriptor rings and more than ${2 * ringSize} buffers per pair`,
      });
    }
    this.#perPair = perPair;
    this.count = pairs * perPair;
    this.#inUse = new Uint8Array(this.count);
    // per pair: RX ring, TX ring (a page each: contiguous in every mode), state, buffers (2 per page)
    const state = roundUp(queueStateBytes(ringSize, perPair), PAGE);
    const pairBytes = 2 * PAGE + state + roundUp(perPair * ENTRY_SIZE, PAGE);
    const mem = this.buffer = dev.allocDma(pairs * pairBytes);
    const poller = new Poller(mem);
    for (let q = 0; q < pairs; q++) {
      const at = q * pairBytes, buffers = at + 2 * PAGE + state;
      this.#offsets.push(buffers);
      for (let i = 0; i < perPair; i++) mem.write64(buffers + i * ENTRY_SIZE, mem.busAddress(buffers + i * ENTRY_SIZE));
      const queue = poller.queue({
        rxRing: at,
        txRing: at + PAGE,
        ringSize,
        buffers,
        bufferSize: ENTRY_SIZE,
        bufferCount: perPair,
        headroom: HEADROOM,
        state: at + 2 * PAGE,
        txCleanBatch: TX_CLEAN_BATCH,
        ...format,
      });
      this.pairs.push(new QueuePair(mem, queue, q * perPair));
    }
  }

  /** Binds every pair to `pool` (made over this store). */
  attach(pool: PacketPool): void {
    for (const p of this.pairs) p.attach(pool, this.#inUse);
  }

  /** Free buffers of all pairs. */
  get available(): number {
    return this.pairs.reduce((n, p) => n + p.queue.free, 0);
  }

  /** Takes a buffer from the pair with the most free ones, or `null`. */
  alloc(): number | null {
    let best = this.pairs[0];
    for (const p of this.pairs) if (p.queue.free > best.queue.free) best = p;
    const b = best.queue.alloc();
    if (b < 0) return null;
    this.#inUse[best.first + b] = 1;
    return best.first + b;
  }

  /** Returns buffer `index` to its own pair (a double free throws). */
  free(index: number): void {
    if (!(this.#inUse[index] === 1)) {
      throw new VfioError(`buffer ${index} freed but not in use`, { remedy: "free each buffer once" });
    }
    this.#inUse[index] = 0;
    const q = Math.floor(index / this.#perPair);
    this.pairs[q].queue.release(index - q * this.#perPair);
  }

  /** The bus address of buffer `index`'s entry. */
  busAddress(index: number): bigint {
    return this.buffer.busAddress(this.offsetOf(index));
  }

  /** Byte offset of buffer `index`'s entry in {@linkcode QueuePairs.buffer}. */
  offsetOf(index: number): number {
    const q = Math.floor(index / this.#perPair);
    return this.#offsets[q] + (index - q * this.#perPair) * ENTRY_SIZE;
  }
}
