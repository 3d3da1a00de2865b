/**
 * Busy-polling a register or a DMA descriptor field until the device sets it: through the C poll helper
 * (`ffi/poll_helper.c`, one FFI call per wait, volatile loads, barriers) when it is loaded, else a
 * `deviceLoad` loop (never hoisted by the JIT, never a write). Every argument is validated before anything is read, so a bad
 * offset, layout or count is an {@linkcode OutOfRangeError} and a closed buffer a {@linkcode ClosedError}, never a
 * segfault; a descriptor ring is validated once, when it is prepared ({@linkcode Poller.ring}), and each poll of it
 * then checks only what changes per call (the closed flag, the head, the budget, the spin count).
 *
 * ```ts
 * import { Poller } from "@vfio-ts/vfio";
 * import type { DmaBuffer } from "@vfio-ts/vfio";
 * declare const ring: DmaBuffer;
 * const poller = new Poller(ring);
 * const status = poller.spin32(12, 0x1, 0x1, 1_000_000); // descriptor 0's status word, DD bit
 * if ((status & 1) === 0) console.log("timed out");
 * ```
 * @module
 */
import { libc } from "../ffi/libc.ts";
import { POLL_HELPER_REFUSED, type PollBase, pollHelper, RX_NOT_EOP } from "../ffi/poll_helper.ts";
import type { NativePollHelper } from "../ffi/poll_helper.ts";
import { deviceLoad } from "./device_load.ts";
import { DmaBuffer } from "./dma/buffer.ts";
import { ClosedError, OutOfRangeError } from "./errors.ts";
import type { Region } from "./region.ts";

/** What a {@linkcode Poller} can watch: a DMA buffer, or a region's mapping at offset 0. */
export type PollTarget = DmaBuffer | Region;

/** Options of {@linkcode Poller}. */
export interface PollerOptions {
  /** `false`: use the pure-TypeScript loop even when the C helper is loaded (default: the helper when loaded). */
  native?: boolean;
}

/** A ring of fixed-size descriptors with a 32-bit status word, as NICs and NVMe queues use. */
export interface RingLayout {
  /** Byte offset of descriptor 0 in the target (4-byte aligned). */
  offset: number;
  /** Bytes per descriptor (a multiple of 4, at least 4). */
  stride: number;
  /** Number of descriptors (at least 1). */
  size: number;
  /** Byte offset of the 32-bit status word inside a descriptor (4-byte aligned, the word inside the stride). */
  statusOffset: number;
  /** Status bits to test (e.g. the DD bit), an unsigned 32-bit integer. */
  mask: number;
  /** Value of those bits when the device is done with the descriptor (only bits of `mask`). */
  want: number;
}

/**
 * A descriptor ring prepared for polling by {@linkcode Poller.ring}: its layout was validated against the target
 * once, so each {@linkcode PolledRing.ready} call checks only the closed flag, the head, the budget and the spins.
 *
 * ```ts
 * import { Poller } from "@vfio-ts/vfio";
 * import type { DmaBuffer } from "@vfio-ts/vfio";
 * declare const descriptors: DmaBuffer;
 * const rx = new Poller(descriptors).ring({ offset: 0, stride: 16, size: 256, statusOffset: 12, mask: 1, want: 1 });
 * const done = rx.ready(0, 32); // descriptors completed from head 0, at most 32
 * ```
 */
export interface PolledRing {
  /** The validated layout (a frozen copy of the one given). */
  readonly layout: Readonly<RingLayout>;
  /**
   * Spins up to `maxSpins` reads on descriptor `head` until the device is done with it, then counts the
   * consecutive done descriptors from `head` (wrapping), at most `budget`: the RX/TX-completion batch. Returns 0
   * when nothing completed in time (or `budget` is 0). With the helper, descriptor fields read after the call are
   * ordered after it.
   */
  ready(head: number, budget: number, maxSpins?: number): number;
}

/**
 * A NIC queue pair for {@linkcode Poller.queue}: 16-byte RX and TX descriptors (ixgbe/igb advanced format: read
 * format a 64-bit buffer address at 0 and, for RX, a 64-bit 0 at 8; TX `cmd_type_len` = `txCmd | length` at 8 and
 * `length << txLengthShift` at 12; the device writes back an RX status word and length, and the TX done bit, bit 0
 * of the word at 12), a pool of equal buffers in the same target, and a state block (also in the target) where the
 * queue keeps its free stack and slot tables, {@linkcode queueStateBytes} long. Buffer `i`'s header is at
 * `buffers + i * bufferSize`: its 64-bit bus address at 0 (the caller writes it once), the frame length at 12;
 * the frame starts at `headroom` bytes from the header. All offsets are bytes from the start of the target.
 */
export interface QueueLayout {
  /** Offset of RX descriptor 0 (16-byte aligned). */
  rxRing: number;
  /** Offset of TX descriptor 0 (16-byte aligned). */
  txRing: number;
  /** Descriptors per ring (both rings), at least 2. */
  ringSize: number;
  /** Offset of buffer 0's header (8-byte aligned). */
  buffers: number;
  /** Bytes per buffer (a multiple of 8, more than `headroom`). */
  bufferSize: number;
  /** Number of buffers, more than `ringSize` (the RX ring holds `ringSize` of them). */
  bufferCount: number;
  /** Bytes from a buffer's header to its frame (at least 16; ixy uses 64). */
  headroom: number;
  /** Offset of the queue's state block (4-byte aligned, {@linkcode queueStateBytes} long, not overlapping the rest). */
  state: number;
  /** Bits ORed with the length into a TX descriptor's `cmd_type_len` (e.g. EOP, IFCS, RS, DEXT, DTYP). */
  txCmd: number;
  /** Shift of the length into the TX descriptor's word at 12 (ixgbe's PAYLEN: 14). */
  txLengthShift: number;
  /** TX descriptors freed per group, with one done-bit read each (ixy: 32). */
  txCleanBatch: number;
  /** Offset of the RX status word inside a written-back descriptor (0, 4, 8 or 12). */
  rxStatusOffset: number;
  /** Offset of the u32 whose low 16 bits are the RX frame length (0, 4, 8 or 12). */
  rxLengthOffset: number;
  /** The RX done bit(s) (DD). */
  rxDone: number;
  /** The RX end-of-packet bit(s) (EOP). */
  rxEop: number;
}

/** Bytes of a {@linkcode QueueLayout}'s state block for `ringSize` descriptors and `bufferCount` buffers. */
export const queueStateBytes = (ringSize: number, bufferCount: number): number => (32 + bufferCount + 3 * ringSize) * 4;

/**
 * A NIC queue pair prepared by {@linkcode Poller.queue}: one call per batch receives (RX refill) and one queues
 * frames for transmission (TX post), with the per-descriptor stores done by the C helper when it is loaded. Frames
 * are buffer numbers; {@linkcode PacketQueue.frames} lists the last received ones. The caller writes the tail
 * registers ({@linkcode PacketQueue.rxTail}, {@linkcode PacketQueue.txTail}) after each step.
 *
 * ```ts
 * import { Poller, type QueueLayout } from "@vfio-ts/vfio";
 * import type { DmaBuffer, Region } from "@vfio-ts/vfio";
 * declare const mem: DmaBuffer, bar0: Region, layout: QueueLayout;
 * const q = new Poller(mem).queue(layout); // headers' bus addresses written before
 * const n = q.receive(32);
 * if (n > 0) {
 *   bar0.write32(0x1018, q.rxTail); // RDT
 *   q.transmit(0, n); // forward them as they are
 *   bar0.write32(0x6018, q.txTail); // TDT
 * }
 * ```
 */
export interface PacketQueue {
  /** The validated layout (a frozen copy). */
  readonly layout: Readonly<QueueLayout>;
  /** The buffers received by the last {@linkcode PacketQueue.receive} (first `n` entries; a view on the state block). */
  readonly frames: Uint32Array;
  /** The last RX slot handed back to the device: write it to the RX tail register after a receive. */
  readonly rxTail: number;
  /** The next free TX slot: write it to the TX tail register after a transmit. */
  readonly txTail: number;
  /** Number of buffers on the free stack. */
  readonly free: number;
  /**
   * Takes up to `budget` received frames (RX done bit set) from the RX head into {@linkcode PacketQueue.frames},
   * stores each length in its header and re-arms each slot with a free buffer; returns how many (fewer, or 0, when
   * the free stack runs out: {@linkcode PacketQueue.transmit} returns sent buffers to it as it cleans). Throws a
   * {@linkcode OutOfRangeError} at a frame without end-of-packet (multi-descriptor frames are not handled).
   */
  receive(budget: number): number;
  /**
   * Frees the buffers of completed TX groups, queues `frames[first .. first + n)` from the TX tail and returns the
   * frames that did not fit to the free stack; returns how many it queued.
   */
  transmit(first: number, n: number): number;
  /** Buffer number `i`'s header offset in the target. */
  header(i: number): number;
  /** Takes a buffer off the free stack (for a frame the program fills and transmits), or -1 when it is empty. */
  alloc(): number;
  /**
   * Puts buffer `i` back on the free stack: one the program took with {@linkcode PacketQueue.alloc} or received
   * and will not transmit. Throws an {@linkcode OutOfRangeError} for a number past the buffers or a full stack.
   */
  release(i: number): void;
}

// The state block's words (ffi/poll_helper.c, enum Q_*).
const Q_FIELDS = [
  "rxRing",
  "txRing",
  "ringSize",
  "buffers",
  "bufferSize",
  "bufferCount",
  "headroom",
  "txCmd",
  "txLengthShift",
  "txCleanBatch",
  "rxStatusOffset",
  "rxLengthOffset",
  "rxDone",
  "rxEop",
] as const;
const Q_RX_HEAD = 14, Q_TX_TAIL = 15, Q_TX_CLEAN = 16, Q_FREE_TOP = 17, Q_WORDS = 32;

/** Default spin budget of {@linkcode spinUntil}: about a tenth of a second of reads of ordinary memory. */
export const DEFAULT_MAX_SPINS = 100_000_000;

const MAX_U32 = 0xffffffff;
const MAX_U64 = 0xffff_ffff_ffff_ffffn;

/** True for an integer in [0, 2^32). */
const isU32 = (n: number): boolean => (n >>> 0) === n;

/**
 * Busy-polls fields of one DMA buffer or region. Make one per buffer and keep it: it prepares the pointer once.
 *
 * ```ts
 * import { Poller } from "@vfio-ts/vfio";
 * import type { Region } from "@vfio-ts/vfio";
 * declare const bar0: Region;
 * const p = new Poller(bar0);
 * p.spin32(0x20, 0x1, 0x0, 10_000); // wait for a busy bit to clear
 * ```
 */
export class Poller {
  readonly #target: PollTarget;
  readonly #limit: number;
  readonly #c: NativePollHelper | null;
  readonly #base: PollBase;
  readonly #u32: Uint32Array;
  readonly #u64: BigUint64Array;
  readonly #rings = new WeakMap<RingLayout, Ring>();

  /** Prepares polling on `target`; throws if it is closed or (a region) has nothing mmapped at offset 0. */
  constructor(target: PollTarget, options: PollerOptions = {}) {
    this.#target = target;
    let address: bigint, length: number;
    if (target instanceof DmaBuffer) {
      address = target.vaddr; // throws ClosedError when closed
      length = target.size;
    } else {
      address = target.unsafeAddress; // throws ClosedError / UnsupportedError
      const first = target.mappedAreas.find((a) => a.offset === 0)!;
      length = Math.min(first.size, target.size);
    }
    // Offsets are C uint32_t: only the first 4 GiB - 1 byte of a larger mapping can be polled.
    this.#limit = (Math.min(length, MAX_U32) & ~3) >>> 0;
    this.#c = options.native === false ? null : pollHelper().functions;
    this.#base = this.#c ? this.#c.base(address) : 0;
    // The fallback's own views; only touched after a `closed` check, so they never outlive the mapping in use.
    const buffer = this.#c ? new ArrayBuffer(0) : libc.arrayBuffer(address, this.#limit);
    this.#u32 = new Uint32Array(buffer);
    this.#u64 = new BigUint64Array(buffer, 0, Math.floor(buffer.byteLength / 8));
  }

  /** True when the calls go to the C helper. */
  get native(): boolean {
    return this.#c !== null;
  }

  #checkOpen(): void {
    if (this.#target.closed) throw new ClosedError("the polled buffer or region");
  }

  #check(offset: number, width: number): void {
    this.#checkOpen();
    if (!(isU32(offset) && offset + width <= this.#limit && (offset & (width - 1)) === 0)) {
      throw new OutOfRangeError(
        `poll of ${width * 8} bits at ${offset}: outside the ${this.#limit}-byte mapping or not ${width}-byte aligned`,
        { remedy: "poll a naturally aligned field inside the buffer" },
      );
    }
  }

  /**
   * Reads the u32 at `offset` until `(value & mask) === want`, at most `maxSpins` times; returns the last value
   * read (test it again to tell a match from a timeout). Blocks the thread while it spins.
   */
  spin32(offset: number, mask: number, want: number, maxSpins: number = DEFAULT_MAX_SPINS): number {
    this.#check(offset, 4);
    checkMask(mask, want);
    const spins = checkSpins(maxSpins), m = mask >>> 0, w = want >>> 0;
    if (this.#c) return this.#c.spin32(this.#base, this.#limit, offset, m, w, spins);
    const u32 = this.#u32, i = offset >>> 2;
    let v = deviceLoad(u32, i);
    for (let n = 1; ((v & m) >>> 0) !== w && n < spins; n++) v = deviceLoad(u32, i);
    return v;
  }

  /** The same on the u64 at `offset` (one 8-byte load per read). */
  spin64(offset: number, mask: bigint, want: bigint, maxSpins: number = DEFAULT_MAX_SPINS): bigint {
    this.#check(offset, 8);
    checkMask64(mask, want);
    const spins = checkSpins(maxSpins);
    if (this.#c) return this.#c.spin64(this.#base, this.#limit, offset, mask, want, spins);
    const u64 = this.#u64, i = offset >>> 3;
    let v = deviceLoad(u64, i);
    for (let n = 1; (v & mask) !== want && n < spins; n++) v = deviceLoad(u64, i);
    return v;
  }

  /**
   * Validates a descriptor ring's layout against this target once and returns it prepared for polling: every
   * field an integer in range, the stride a multiple of 4 holding the status word, and the last descriptor's status
   * word inside the mapping. Throws an {@linkcode OutOfRangeError} naming the first bad field.
   */
  ring(layout: RingLayout): PolledRing {
    this.#checkOpen();
    const { offset, stride, size, statusOffset, mask, want } = layout;
    const bad = (what: string): never => {
      const fields = `offset ${offset}, stride ${stride}, size ${size}, statusOffset ${statusOffset}`;
      throw new OutOfRangeError(`ring layout (${fields}): ${what}`, {
        remedy: "describe a ring of whole, 4-byte aligned descriptors that lies inside the polled buffer",
      });
    };
    if (!isU32(offset) || (offset & 3) !== 0) bad("offset must be a 4-byte aligned unsigned 32-bit integer");
    if (!isU32(stride) || stride < 4 || (stride & 3) !== 0) bad("stride must be a multiple of 4, at least 4");
    if (!isU32(size) || size < 1) bad("size must be an integer of at least 1");
    if (!isU32(statusOffset) || (statusOffset & 3) !== 0 || statusOffset + 4 > stride) {
      bad("statusOffset must be 4-byte aligned with its 32-bit word inside the stride");
    }
    checkMask(mask, want);
    // Exact for any fit (all terms are below 2^32 and the sum is at most 2^32); a huge product only grows.
    const end = offset + (size - 1) * stride + statusOffset + 4;
    if (!(end <= this.#limit)) bad(`its last status word ends at byte ${end}, past the ${this.#limit}-byte mapping`);
    return new Ring(this.#target, this.#c, this.#base, this.#limit, this.#u32, layout);
  }

  /**
   * Prepares a NIC queue pair (see {@linkcode QueueLayout}) on this target: validates the layout once, writes the
   * state block (buffers `0 .. ringSize-1` on the RX ring, whose descriptors it writes from their headers' bus
   * addresses, the rest on the free stack; TX empty) and returns the queue. Throws an {@linkcode OutOfRangeError}
   * naming the first bad field. The device must not run on the rings yet.
   */
  queue(layout: QueueLayout): PacketQueue {
    this.#checkOpen();
    const l = { ...layout };
    const bad = (what: string): never => {
      throw new OutOfRangeError(`queue layout: ${what}`, {
        remedy: "describe rings, buffers and a state block that lie inside the polled buffer",
      });
    };
    for (const f of Q_FIELDS) if (!isU32(l[f])) bad(`${f} must be an unsigned 32-bit integer, got ${l[f]}`);
    const { ringSize, bufferCount, bufferSize, headroom } = l;
    if (ringSize < 2 || bufferCount <= ringSize) bad("ringSize must be at least 2 and bufferCount above it");
    if ((l.rxRing & 15) || (l.txRing & 15)) bad("rxRing and txRing must be 16-byte aligned");
    if ((l.buffers & 7) || (bufferSize & 7) || headroom < 16 || headroom >= bufferSize) {
      bad("buffers and bufferSize must be multiples of 8, headroom at least 16 and below bufferSize");
    }
    if (
      (l.state & 3) || l.rxStatusOffset > 12 || (l.rxStatusOffset & 3) || l.rxLengthOffset > 12 ||
      (l.rxLengthOffset & 3)
    ) {
      bad("state must be 4-byte aligned, rxStatusOffset and rxLengthOffset 0, 4, 8 or 12");
    }
    if (l.txCleanBatch < 1 || l.txCleanBatch > ringSize || l.txLengthShift > 16 || l.rxDone === 0) {
      bad("txCleanBatch must be 1..ringSize, txLengthShift at most 16, rxDone non-zero");
    }
    const areas: [string, number, number][] = [
      ["rxRing", l.rxRing, ringSize * 16],
      ["txRing", l.txRing, ringSize * 16],
      ["buffers", l.buffers, bufferCount * bufferSize],
      ["state", l.state, queueStateBytes(ringSize, bufferCount)],
    ];
    for (const [name, at, len] of areas) {
      if (!(at + len <= this.#limit)) bad(`${name} ends past the ${this.#limit}-byte mapping`);
    }
    for (const [a, x, xl] of areas) {
      for (const [b, y, yl] of areas) if (a < b && x < y + yl && y < x + xl) bad(`${a} and ${b} overlap`);
    }
    return new Queue(this.#target, this.#c, this.#base, this.#limit, this.#c ? null : this.#u32, l);
  }

  /**
   * {@linkcode PolledRing.ready} on `layout`, prepared on first use and again whenever one of its fields changed.
   * Prefer {@linkcode Poller.ring} and keep the ring.
   */
  ringReady(ring: RingLayout, head: number, budget: number, maxSpins: number = 1): number {
    let r = this.#rings.get(ring);
    if (!r?.describes(ring)) this.#rings.set(ring, r = this.ring(ring) as Ring);
    return r.ready(head, budget, maxSpins);
  }
}

/** The one implementation of {@linkcode PolledRing}, made only by {@linkcode Poller.ring} after validation. */
class Ring implements PolledRing {
  readonly layout: Readonly<RingLayout>;
  readonly #target: PollTarget;
  readonly #c: NativePollHelper | null;
  readonly #base: PollBase;
  readonly #limit: number;
  readonly #u32: Uint32Array;
  readonly #stride: number;
  readonly #first: number;
  readonly #size: number;
  readonly #mask: number;
  readonly #want: number;

  constructor(
    target: PollTarget,
    c: NativePollHelper | null,
    base: PollBase,
    limit: number,
    u32: Uint32Array,
    layout: RingLayout,
  ) {
    this.layout = Object.freeze({ ...layout });
    this.#target = target;
    this.#c = c;
    this.#base = base;
    this.#limit = limit;
    this.#u32 = u32;
    this.#stride = layout.stride;
    this.#first = layout.offset + layout.statusOffset;
    this.#size = layout.size;
    this.#mask = layout.mask >>> 0;
    this.#want = layout.want >>> 0;
  }

  /** Whether `layout` still has the fields this ring was validated with. */
  describes(layout: RingLayout): boolean {
    const l = this.layout;
    return layout.offset === l.offset && layout.stride === l.stride && layout.size === l.size &&
      layout.statusOffset === l.statusOffset && layout.mask === l.mask && layout.want === l.want;
  }

  ready(head: number, budget: number, maxSpins: number = 1): number {
    if (this.#target.closed) throw new ClosedError("the polled buffer or region");
    const size = this.#size;
    if (!(isU32(head) && head < size && isU32(budget))) {
      throw new OutOfRangeError(`ring poll at head ${head} with budget ${budget} (${size} descriptors)`, {
        remedy: "head must be an integer below the ring size and budget a non-negative integer",
      });
    }
    const spins = checkSpins(maxSpins), n = budget < size ? budget : size;
    const mask = this.#mask, want = this.#want;
    if (this.#c) {
      const r = this.#c.ringReady(this.#base, this.#limit, this.#stride, this.#first, size, head, mask, want, n, spins);
      if (r === POLL_HELPER_REFUSED) throw new OutOfRangeError("the C poll helper refused the ring layout");
      return r;
    }
    if (n === 0) return 0;
    const u32 = this.#u32, base = this.#first >>> 2, step = this.#stride >>> 2;
    let s = 1;
    while (((deviceLoad(u32, base + head * step) & mask) >>> 0) !== want) if (s++ >= spins) return 0;
    let count = 1, i = head + 1 === size ? 0 : head + 1;
    while (count < n && ((deviceLoad(u32, base + i * step) & mask) >>> 0) === want) {
      count++;
      i = i + 1 === size ? 0 : i + 1;
    }
    return count;
  }
}

/** The one implementation of {@linkcode PacketQueue}, made only by {@linkcode Poller.queue} after validation. */
class Queue implements PacketQueue {
  readonly layout: Readonly<QueueLayout>;
  readonly frames: Uint32Array;
  readonly #target: PollTarget;
  readonly #c: NativePollHelper | null;
  readonly #base: PollBase;
  readonly #limit: number;
  readonly #state: number;
  readonly #q: Uint32Array;
  readonly #u32: Uint32Array | null;

  constructor(
    target: PollTarget,
    c: NativePollHelper | null,
    base: PollBase,
    limit: number,
    u32: Uint32Array | null,
    l: QueueLayout,
  ) {
    this.layout = Object.freeze(l);
    this.#target = target;
    this.#c = c;
    this.#base = base;
    this.#limit = limit;
    this.#state = l.state;
    const address = target instanceof DmaBuffer ? target.vaddr : target.unsafeAddress;
    const all = u32 ?? new Uint32Array(libc.arrayBuffer(address, limit));
    this.#u32 = c ? null : all;
    const words = queueStateBytes(l.ringSize, l.bufferCount) >>> 2;
    const q = this.#q = all.subarray(l.state >>> 2, (l.state >>> 2) + words);
    this.frames = q.subarray(Q_WORDS + l.bufferCount + 2 * l.ringSize);
    q.fill(0);
    Q_FIELDS.forEach((f, i) => q[i] = l[f]);
    let top = 0;
    for (let i = l.bufferCount; i-- > l.ringSize;) q[Q_WORDS + top++] = i;
    q[Q_FREE_TOP] = top;
    for (let i = 0; i < l.ringSize; i++) {
      const h = (l.buffers + i * l.bufferSize) >>> 2, d = (l.rxRing + i * 16) >>> 2;
      const bus = BigInt(all[h]) + (BigInt(all[h + 1]) << 32n) + BigInt(l.headroom);
      all[d] = Number(bus & 0xffffffffn);
      all[d + 1] = Number(bus >> 32n);
      all[d + 2] = all[d + 3] = 0;
      q[Q_WORDS + l.bufferCount + i] = i;
    }
  }

  get rxTail(): number {
    const h = this.#q[Q_RX_HEAD];
    return h === 0 ? this.layout.ringSize - 1 : h - 1;
  }
  get txTail(): number {
    return this.#q[Q_TX_TAIL];
  }
  get free(): number {
    return this.#q[Q_FREE_TOP];
  }
  header(i: number): number {
    return this.layout.buffers + i * this.layout.bufferSize;
  }
  alloc(): number {
    if (this.#target.closed) throw new ClosedError("the polled buffer or region");
    const q = this.#q, top = q[Q_FREE_TOP];
    if (top === 0) return -1;
    q[Q_FREE_TOP] = top - 1;
    return q[Q_WORDS + top - 1];
  }
  release(i: number): void {
    if (this.#target.closed) throw new ClosedError("the polled buffer or region");
    const q = this.#q, top = q[Q_FREE_TOP], count = this.layout.bufferCount;
    if (!(isU32(i) && i < count && top < count)) {
      throw new OutOfRangeError(`release of buffer ${i} (${count} buffers, ${top} free)`, {
        remedy: "release only buffers of this queue that it does not hold, each once",
      });
    }
    q[Q_WORDS + top] = i;
    q[Q_FREE_TOP] = top + 1;
  }

  receive(budget: number): number {
    if (this.#target.closed) throw new ClosedError("the polled buffer or region");
    if (!isU32(budget)) throw new OutOfRangeError(`receive budget ${budget}`, { remedy: "pass a count" });
    const r = this.#c ? this.#c.rxRefill(this.#base, this.#limit, this.#state, budget) : this.#receiveTs(budget);
    if (r === POLL_HELPER_REFUSED) throw new OutOfRangeError("the C poll helper refused the queue's state block");
    if (r >= RX_NOT_EOP) {
      throw new OutOfRangeError(`a frame spans several RX descriptors (after ${r - RX_NOT_EOP})`, {
        remedy: "use buffers at least as large as the largest frame (jumbo frames need larger buffers)",
      });
    }
    return r;
  }

  transmit(first: number, n: number): number {
    if (this.#target.closed) throw new ClosedError("the polled buffer or region");
    if (!(isU32(first) && isU32(n) && first + n <= this.layout.ringSize)) {
      throw new OutOfRangeError(`transmit of frames ${first} .. ${first + n}`, {
        remedy: "first + n must not pass the ring size",
      });
    }
    const r = this.#c ? this.#c.txPost(this.#base, this.#limit, this.#state, first, n) : this.#transmitTs(first, n);
    if (r === POLL_HELPER_REFUSED) throw new OutOfRangeError("the C poll helper refused the queue's state block");
    return r;
  }

  // The same steps as vfio_ts_rx_refill / vfio_ts_tx_post, for when the helper is not loaded.
  #receiveTs(budget: number): number {
    const m = this.#u32!, q = this.#q, l = this.layout, ring = l.ringSize, count = l.bufferCount;
    const stack = Q_WORDS, rxb = Q_WORDS + count, frames = rxb + 2 * ring;
    let head = q[Q_RX_HEAD], top = q[Q_FREE_TOP], n = 0, flag = 0;
    const max = budget < ring ? budget : ring;
    for (; n < max && top > 0; n++) {
      const d = (l.rxRing + head * 16) >>> 2, status = deviceLoad(m, d + (l.rxStatusOffset >>> 2));
      if ((status & l.rxDone) !== l.rxDone) break;
      if ((status & l.rxEop) !== l.rxEop) {
        flag = RX_NOT_EOP;
        break;
      }
      const b = q[rxb + head], nb = q[stack + top - 1];
      if (b >= count || nb >= count) break;
      const h = (l.buffers + b * l.bufferSize) >>> 2, nh = (l.buffers + nb * l.bufferSize) >>> 2;
      m[h + 3] = m[d + (l.rxLengthOffset >>> 2)] & 0xffff;
      const lo = m[nh] + l.headroom;
      m[d] = lo;
      m[d + 1] = m[nh + 1] + (lo > 0xffffffff ? 1 : 0);
      m[d + 2] = m[d + 3] = 0;
      top--;
      q[rxb + head] = nb;
      q[frames + n] = b;
      head = head + 1 === ring ? 0 : head + 1;
    }
    q[Q_RX_HEAD] = head;
    q[Q_FREE_TOP] = top;
    return flag ? (n | flag) >>> 0 : n;
  }

  #transmitTs(first: number, n: number): number {
    const m = this.#u32!, q = this.#q, l = this.layout, ring = l.ringSize, count = l.bufferCount;
    const stack = Q_WORDS, txb = Q_WORDS + count + ring, frames = txb + ring + first;
    let tail = q[Q_TX_TAIL], clean = q[Q_TX_CLEAN], top = q[Q_FREE_TOP], sent = 0;
    for (;;) {
      const cleanable = tail >= clean ? tail - clean : tail + ring - clean;
      if (cleanable < l.txCleanBatch) break;
      let to = clean + l.txCleanBatch - 1;
      if (to >= ring) to -= ring;
      if ((deviceLoad(m, ((l.txRing + to * 16) >>> 2) + 3) & 1) === 0) break;
      for (let i = clean;; i = i + 1 === ring ? 0 : i + 1) {
        if (top < count) q[stack + top++] = q[txb + i];
        if (i === to) break;
      }
      clean = to + 1 === ring ? 0 : to + 1;
    }
    for (; sent < n; sent++) {
      const next = tail + 1 === ring ? 0 : tail + 1, b = q[frames + sent];
      if (next === clean || b >= count) break;
      const h = (l.buffers + b * l.bufferSize) >>> 2, d = (l.txRing + tail * 16) >>> 2, len = m[h + 3] & 0xffff;
      const lo = m[h] + l.headroom;
      m[d] = lo;
      m[d + 1] = m[h + 1] + (lo > 0xffffffff ? 1 : 0);
      m[d + 2] = (l.txCmd | len) >>> 0;
      m[d + 3] = (len << l.txLengthShift) >>> 0;
      q[txb + tail] = b;
      tail = next;
    }
    for (let i = sent; i < n; i++) if (top < count && q[frames + i] < count) q[stack + top++] = q[frames + i];
    q[Q_TX_TAIL] = tail;
    q[Q_TX_CLEAN] = clean;
    q[Q_FREE_TOP] = top;
    return sent;
  }
}

/** A 32-bit mask or value: an unsigned 32-bit integer, or the signed one JS bit operators make (`1 << 31`). */
const isBits32 = (n: number): boolean => (n >>> 0) === n || (n | 0) === n;

function checkMask(mask: number, want: number): void {
  if (!(isBits32(mask) && isBits32(want) && (want & ~mask) === 0)) {
    throw new OutOfRangeError(`mask ${mask} / want ${want}: not 32-bit integers with want inside mask`, {
      remedy: "pass integers from 0 to 0xffffffff, want having only bits of mask (e.g. mask 0x1, want 0x1)",
    });
  }
}

function checkMask64(mask: bigint, want: bigint): void {
  const u64 = (n: bigint): boolean => typeof n === "bigint" && n >= 0n && n <= MAX_U64;
  if (!(u64(mask) && u64(want) && (want & ~mask) === 0n)) {
    throw new OutOfRangeError(`mask ${mask} / want ${want}: not unsigned 64-bit bigints with want inside mask`, {
      remedy: "pass bigints from 0n to 2n ** 64n - 1n, want having only bits of mask",
    });
  }
}

function checkSpins(maxSpins: number): number {
  if (!(maxSpins >= 1 && maxSpins <= MAX_U32 && Number.isInteger(maxSpins))) {
    throw new OutOfRangeError(`maxSpins must be an integer from 1 to 2^32-1, got ${maxSpins}`, {
      remedy: "pass the number of reads to try, e.g. 1_000_000",
    });
  }
  return maxSpins;
}

const pollers = new WeakMap<PollTarget, Poller>();

/**
 * Busy-polls the u32 at `offset` of a DMA buffer or region until `(value & mask) === want` (at most `maxSpins`
 * reads); returns the last value read. Keeps one {@linkcode Poller} per target.
 *
 * ```ts
 * import { spinUntil } from "@vfio-ts/vfio";
 * import type { Region } from "@vfio-ts/vfio";
 * declare const bar0: Region;
 * const v = spinUntil(bar0, 0x20, 0x1, 0x0, 1_000_000);
 * ```
 */
export function spinUntil(
  target: PollTarget,
  offset: number,
  mask: number,
  want: number,
  maxSpins: number = DEFAULT_MAX_SPINS,
): number {
  let p = pollers.get(target);
  if (!p) pollers.set(target, p = new Poller(target));
  return p.spin32(offset, mask, want, maxSpins);
}

/**
 * Whether the C poll helper is loaded in this process (the first call loads it), which object it is, and why it
 * is not (`reason`, null when it is).
 *
 * ```ts
 * import { pollHelperStatus } from "@vfio-ts/vfio";
 * const { native, source, reason } = pollHelperStatus();
 * console.log(native ? `C helper: ${source}` : `pure TypeScript: ${reason}`);
 * ```
 */
export function pollHelperStatus(): { native: boolean; source: string; reason: string | null } {
  const { native, source, reason } = pollHelper();
  return { native, source, reason };
}
