/**
 * Busy-polling a register or a DMA descriptor field until the device sets it: through the C poll helper
 * (`ffi/poll_helper.c`, one FFI call per wait, volatile loads, barriers) when it is loaded, else an
 * `Atomics.load` loop (never hoisted by the JIT). Bounds and use-after-close are checked on every call, so a bad
 * offset is an {@linkcode OutOfRangeError} and a closed buffer a {@linkcode ClosedError}, never a segfault.
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
import { type PollBase, pollHelper } from "../ffi/poll_helper.ts";
import type { NativePollHelper } from "../ffi/poll_helper.ts";
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
  /** Byte offset of descriptor 0 in the target. */
  offset: number;
  /** Bytes per descriptor. */
  stride: number;
  /** Number of descriptors. */
  size: number;
  /** Byte offset of the 32-bit status word inside a descriptor (4-byte aligned). */
  statusOffset: number;
  /** Status bits to test (e.g. the DD bit). */
  mask: number;
  /** Value of those bits when the device is done with the descriptor. */
  want: number;
}

/** Default spin budget of {@linkcode spinUntil}: about a tenth of a second of reads of ordinary memory. */
export const DEFAULT_MAX_SPINS = 100_000_000;

const MAX_U32 = 0xffffffff;

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

  /** Prepares polling on `target`; throws if it is closed or (a region) has nothing mmapped at offset 0. */
  constructor(target: PollTarget, options: PollerOptions = {}) {
    this.#target = target;
    let address: bigint, length: number;
    if (target instanceof DmaBuffer) {
      address = target.vaddr; // throws ClosedError when closed
      length = target.sizeBytes;
    } else {
      address = target.unsafeAddress; // throws ClosedError / UnsupportedError
      const first = target.mappedAreas.find((a) => a.offset === 0)!;
      length = Math.min(first.size, target.size);
    }
    this.#limit = Math.min(length, MAX_U32);
    this.#c = options.native === false ? null : pollHelper.functions;
    this.#base = this.#c ? this.#c.base(address) : 0;
    // The fallback's own views; only touched after a `closed` check, so they never outlive the mapping in use.
    const buffer = this.#c ? new ArrayBuffer(0) : libc.arrayBuffer(address, Math.floor(length / 8) * 8);
    this.#u32 = new Uint32Array(buffer);
    this.#u64 = new BigUint64Array(buffer);
  }

  /** True when the calls go to the C helper. */
  get native(): boolean {
    return this.#c !== null;
  }

  #check(offset: number, width: number): void {
    if (this.#target.closed) throw new ClosedError("the polled buffer or region");
    if (!((offset >>> 0) === offset && offset + width <= this.#limit && (offset & (width - 1)) === 0)) {
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
    const spins = checkSpins(maxSpins);
    if (this.#c) return this.#c.spin32(this.#base, offset, mask >>> 0, want >>> 0, spins);
    const u32 = this.#u32, i = offset >>> 2, m = mask >>> 0, w = want >>> 0;
    let v = Atomics.load(u32, i);
    for (let n = 1; ((v & m) >>> 0) !== w && n < spins; n++) v = Atomics.load(u32, i);
    return v;
  }

  /** The same on the u64 at `offset` (one 8-byte load per read). */
  spin64(offset: number, mask: bigint, want: bigint, maxSpins: number = DEFAULT_MAX_SPINS): bigint {
    this.#check(offset, 8);
    const spins = checkSpins(maxSpins);
    if (this.#c) return this.#c.spin64(this.#base, offset, mask, want, spins);
    const u64 = this.#u64, i = offset >>> 3;
    let v = Atomics.load(u64, i);
    for (let n = 1; (v & mask) !== want && n < spins; n++) v = Atomics.load(u64, i);
    return v;
  }

  /**
   * Spins up to `maxSpins` reads on descriptor `head` until the device is done with it, then counts the
   * consecutive done descriptors from `head` (wrapping), at most `budget`: the RX/TX-completion batch. Returns 0
   * when nothing completed in time. With the helper, descriptor fields read after the call are ordered after it.
   */
  ringReady(ring: RingLayout, head: number, budget: number, maxSpins: number = 1): number {
    const last = ring.offset + (ring.size - 1) * ring.stride + ring.statusOffset;
    this.#check(last, 4);
    this.#check(ring.offset + ring.statusOffset, 4);
    if (!((head >>> 0) === head && head < ring.size && ring.size > 0 && (ring.stride & 3) === 0)) {
      throw new OutOfRangeError(`ring head ${head} of ${ring.size} descriptors (stride ${ring.stride})`, {
        remedy: "head must be below the ring size and the stride a multiple of 4",
      });
    }
    const spins = checkSpins(maxSpins), n = Math.min(budget >>> 0, ring.size);
    const mask = ring.mask >>> 0, want = ring.want >>> 0;
    if (this.#c) {
      return this.#c.ringReady(
        this.#base,
        ring.stride,
        ring.offset + ring.statusOffset,
        ring.size,
        head,
        mask,
        want,
        n,
        spins,
      );
    }
    if (n === 0) return 0;
    const u32 = this.#u32, base = (ring.offset + ring.statusOffset) >>> 2, step = ring.stride >>> 2;
    let s = 1;
    while (((Atomics.load(u32, base + head * step) & mask) >>> 0) !== want) if (s++ >= spins) return 0;
    let count = 1, i = head + 1 === ring.size ? 0 : head + 1;
    while (count < n && ((Atomics.load(u32, base + i * step) & mask) >>> 0) === want) {
      count++;
      i = i + 1 === ring.size ? 0 : i + 1;
    }
    return count;
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

/** Why polling is pure TypeScript in this process (null when the C helper is loaded). */
export function pollHelperStatus(): { native: boolean; path: string; reason: string | null } {
  return { native: pollHelper.native, path: pollHelper.path, reason: pollHelper.reason };
}
