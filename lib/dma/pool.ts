/**
 * A DMA pool (ixy's mempool): one DMA buffer carved into `count` fixed-size entries (packet buffers, command
 * slots), handed out by index from a free stack. Bus addresses and offsets are computed once when the pool is
 * made, so `alloc`, `free` and `busAddress` do no system call and allocate nothing.
 *
 * Entries never straddle a break in bus addresses: with hugepages the entry size must divide 2 MiB; with base
 * pages and no IOMMU (physical addresses, usually scattered) it must divide the page size unless the buffer
 * happens to be contiguous.
 *
 * ```ts
 * import { allocDmaPool } from "@vfio-ts/vfio";
 * import type { DmaMapper } from "@vfio-ts/vfio";
 * declare const mapper: DmaMapper;
 * using pool = allocDmaPool(mapper, { entrySize: 2048, count: 1024 });
 * const i = pool.alloc()!;
 * pool.buffer.u8.fill(0, pool.offsetOf(i), pool.offsetOf(i) + pool.entrySize);
 * console.log(pool.busAddress(i).toString(16));
 * pool.free(i);
 * ```
 * @module
 */
import { ClosedError, OutOfRangeError, VfioError } from "../errors.ts";
import { inspectable } from "../inspect.ts";
import type { DmaMapper } from "../iommu/types.ts";
import { allocDma, type DmaBuffer, type DmaBufferSummary } from "./buffer.ts";
import { HUGEPAGE_SIZE, type HugepagePolicy } from "./memory.ts";

/** Options of {@linkcode allocDmaPool}. */
export interface DmaPoolOptions {
  /** Bytes per entry. */
  entrySize: number;
  /** Number of entries. */
  count: number;
  /** Hugepage policy of the backing buffer (default `"prefer"`). */
  hugepages?: HugepagePolicy;
}

/**
 * Fixed-size DMA entries with O(1) alloc/free by index.
 *
 * ```ts
 * import { allocDmaPool } from "@vfio-ts/vfio";
 * import type { DmaMapper } from "@vfio-ts/vfio";
 * declare const mapper: DmaMapper;
 * const pool = allocDmaPool(mapper, { entrySize: 2048, count: 512 });
 * const batch = new Uint32Array(32);
 * const n = pool.allocBatch(32, batch);
 * pool.freeBatch(batch, n);
 * pool.close();
 * ```
 */
export class DmaPool {
  readonly #buffer: DmaBuffer;
  readonly #entrySize: number;
  readonly #count: number;
  readonly #bus: BigUint64Array;
  readonly #offsets: Float64Array;
  readonly #stack: Uint32Array;
  readonly #inUse: Uint8Array;
  #top: number;
  #closed = false;

  /**
   * Carves `buffer` into `count` entries of `entrySize` bytes (default: as many as fit). The pool owns the buffer
   * and closes it on close. Throws when an entry would straddle a bus-address break.
   */
  constructor(buffer: DmaBuffer, entrySize: number, count?: number) {
    const fit = Math.floor(buffer.size / entrySize);
    const n = count ?? fit;
    if (!Number.isSafeInteger(entrySize) || entrySize <= 0) {
      throw new OutOfRangeError(`DMA pool entry size must be a positive integer, got ${entrySize}`);
    }
    if (!Number.isSafeInteger(n) || n <= 0 || n > fit || n >= 2 ** 32) {
      throw new OutOfRangeError(
        `DMA pool of ${n} entries of ${entrySize} bytes does not fit the ${buffer.size}-byte buffer`,
      );
    }
    if (buffer.hugepage && HUGEPAGE_SIZE % entrySize !== 0) {
      throw new VfioError(`DMA pool entry size ${entrySize} does not divide the 2 MiB hugepage size`, {
        remedy: "use a power of two up to 2 MiB (e.g. 2048) so no entry straddles two hugepages",
      });
    }
    if (!buffer.hugepage && !buffer.contiguous && buffer.pageSize % entrySize !== 0) {
      throw new VfioError(
        `DMA pool entry size ${entrySize} does not divide the ${buffer.pageSize}-byte page of a buffer whose pages ` +
          "are not physically contiguous (no IOMMU)",
        { remedy: 'use hugepages ({ hugepages: "require" }), or an entry size that divides the page size' },
      );
    }
    this.#buffer = buffer;
    this.#entrySize = entrySize;
    this.#count = n;
    this.#bus = new BigUint64Array(n);
    this.#offsets = new Float64Array(n);
    this.#stack = new Uint32Array(n);
    this.#inUse = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      this.#offsets[i] = i * entrySize;
      this.#bus[i] = buffer.busAddress(i * entrySize);
      this.#stack[i] = n - 1 - i; // so alloc() hands out 0, 1, 2, …
    }
    this.#top = n;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError("DMA pool");
  }

  #valid(index: number): void {
    if (!(index >= 0 && index < this.#count) || !Number.isInteger(index)) {
      throw new OutOfRangeError(`DMA pool entry ${index} does not exist (0..${this.#count - 1})`);
    }
  }

  /** The backing buffer (its views hold every entry). */
  get buffer(): DmaBuffer {
    this.#check();
    return this.#buffer;
  }

  /** Bytes per entry. */
  get entrySize(): number {
    return this.#entrySize;
  }

  /** Number of entries. */
  get count(): number {
    return this.#count;
  }

  /** Number of free entries. */
  get available(): number {
    return this.#top;
  }

  /** Takes a free entry and returns its index, or `null` when none is left. */
  alloc(): number | null {
    this.#check();
    if (this.#top === 0) return null;
    const index = this.#stack[--this.#top];
    this.#inUse[index] = 1;
    return index;
  }

  /** Gives an entry back; throws on a bad index or a double free. */
  free(index: number): void {
    this.#check();
    this.#valid(index);
    if (this.#inUse[index] === 0) throw new VfioError(`DMA pool entry ${index} freed twice`);
    this.#inUse[index] = 0;
    this.#stack[this.#top++] = index;
  }

  /** Takes up to `n` entries into `out` (at most `out.length`); returns how many it took. */
  allocBatch(n: number, out: Uint32Array): number {
    this.#check();
    if (!((n >>> 0) === n)) {
      throw new OutOfRangeError(`DMA pool allocBatch of ${n} entries: the count must be a non-negative integer`);
    }
    const k = Math.min(n, this.#top, out.length);
    for (let i = 0; i < k; i++) {
      const index = this.#stack[--this.#top];
      this.#inUse[index] = 1;
      out[i] = index;
    }
    return k;
  }

  /** Gives back the first `count` indices of `indices` (default: all). */
  freeBatch(indices: ArrayLike<number>, count: number = indices.length): void {
    this.#check();
    if (!Number.isSafeInteger(count) || count < 0 || count > indices.length) {
      throw new OutOfRangeError(`DMA pool freeBatch of ${count} of ${indices.length} indices: not a valid count`);
    }
    for (let i = 0; i < count; i++) this.free(indices[i]);
  }

  /** The bus address of entry `index` (precomputed). */
  busAddress(index: number): bigint {
    this.#check();
    this.#valid(index);
    return this.#bus[index];
  }

  /** The byte offset of entry `index` in {@linkcode buffer} (precomputed). */
  offsetOf(index: number): number {
    this.#check();
    this.#valid(index);
    return this.#offsets[index];
  }

  /** Closes the pool and its buffer (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#buffer.close();
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** What `console.log(pool)` shows: entry size, count, how many are free, and its buffer. */
  toJSON(): { entrySize: number; count: number; available: number; closed: boolean; buffer: DmaBufferSummary } {
    const c = this.#closed;
    return {
      entrySize: this.#entrySize,
      count: this.#count,
      available: c ? 0 : this.#top,
      closed: c,
      buffer: this.#buffer.toJSON(),
    };
  }
}
inspectable(DmaPool);

/**
 * Allocates one DMA buffer for `count` entries of `entrySize` bytes and makes a pool of it.
 *
 * ```ts
 * import { allocDmaPool } from "@vfio-ts/vfio";
 * import type { DmaMapper } from "@vfio-ts/vfio";
 * declare const mapper: DmaMapper;
 * using pool = allocDmaPool(mapper, { entrySize: 2048, count: 4096, hugepages: "require" });
 * console.log(pool.available); // 4096
 * ```
 */
export function allocDmaPool(mapper: DmaMapper, options: DmaPoolOptions): DmaPool {
  const { entrySize, count } = options;
  if (!Number.isSafeInteger(entrySize) || entrySize <= 0 || !Number.isSafeInteger(count) || count <= 0) {
    throw new OutOfRangeError(`DMA pool needs a positive entrySize and count, got ${entrySize} × ${count}`);
  }
  const buffer = allocDma(mapper, entrySize * count, { hugepages: options.hugepages });
  try {
    return new DmaPool(buffer, entrySize, count);
  } catch (e) {
    buffer.close();
    throw e;
  }
}
