/**
 * DMA buffers: process memory a device reads and writes, the same type in every IOMMU mode. A buffer is
 * {@linkcode DmaMemory} (populated, locked, hugepages when available) mapped through a {@linkcode DmaMapper};
 * the device is given {@linkcode DmaBuffer.busAddress} (an IOVA, or a physical address without an IOMMU) and the
 * program uses the typed views.
 *
 * ```ts
 * import { allocDma } from "@vfio-ts/vfio";
 * import type { DmaMapper } from "@vfio-ts/vfio";
 * declare const mapper: DmaMapper; // device.dma
 * using buf = allocDma(mapper, 4096);
 * buf.u32[0] = 0xdeadbeef;
 * console.log(buf.busAddress(0).toString(16), buf.read32(0).toString(16));
 * ```
 * @module
 */
import { libc } from "../../ffi/libc.ts";
import { deviceLoad } from "../device_load.ts";
import { ClosedError, OutOfRangeError, SizeLimitError, VfioError } from "../errors.ts";
import { hex } from "../hex.ts";
import { byteSize, inspectable } from "../inspect.ts";
import { checkIntWidth } from "../int_width.ts";
import type { DmaMapper, DmaMapping, IommuKind } from "../iommu/types.ts";
import { detachPieces, maxViewBytes, typedViews, type ViewPiece, viewPieces } from "../views.ts";
import { DmaMemory, type HugepagePolicy } from "./memory.ts";

/** Options of {@linkcode allocDma}. */
export interface DmaBufferOptions {
  /** Hugepage policy (default `"prefer"`: 2 MiB pages when some are free). */
  hugepages?: HugepagePolicy;
  /**
   * Require one contiguous run of bus addresses (always true with an IOMMU; without one, base pages are
   * usually scattered, so ask for hugepages and keep the buffer within 2 MiB).
   */
  contiguous?: boolean;
}

const EMPTY = new ArrayBuffer(0);

/** Typed views over part of a DMA buffer ({@linkcode DmaBuffer.view}); detached when the buffer closes. */
export interface DmaView {
  /** Where the view starts in the buffer, in bytes. */
  readonly offset: number;
  /** Its length in bytes. */
  readonly size: number;
  /** The bytes. */
  readonly u8: Uint8Array;
  /** The 16-bit words (the whole ones). */
  readonly u16: Uint16Array;
  /** The 32-bit words. */
  readonly u32: Uint32Array;
  /** The 64-bit words. */
  readonly u64: BigUint64Array;
}

/**
 * A DMA buffer. Its typed views cover the whole buffer; reads of memory the device may change while the program
 * polls must use {@linkcode read32}/{@linkcode read64} (`deviceLoad`): Bun's JIT hoists plain typed-array loads
 * out of loops, and compiles `Atomics.load` to a locked read-modify-write that can overwrite what the device just
 * wrote (see `lib/device_load.ts`).
 *
 * After {@linkcode close}, every accessor throws `ClosedError`, and views taken earlier are detached (length 0):
 * they read `undefined` instead of touching unmapped memory.
 *
 * ```ts
 * import { allocDma } from "@vfio-ts/vfio";
 * import type { DmaMapper } from "@vfio-ts/vfio";
 * declare const mapper: DmaMapper;
 * const buf = allocDma(mapper, 2 << 20, { hugepages: "require" });
 * buf.fill(0xa5);
 * console.log(buf.hugepage, buf.contiguous, buf.busAddress(0x1000));
 * buf.close();
 * ```
 */
export class DmaBuffer {
  readonly #memory: DmaMemory;
  readonly #mapping: DmaMapping;
  readonly #sizeBytes: number;
  readonly #vaddr: bigint;
  // The whole buffer in pieces of at most the runtime's largest view (one piece unless it is over 4 GiB on Bun).
  #pieces: ViewPiece[];
  readonly #pieceBytes: number;
  #views: WeakRef<ArrayBuffer>[] = [];
  #prune = 64;
  #buffer: ArrayBuffer;
  #u8: Uint8Array;
  #u16: Uint16Array;
  #u32: Uint32Array;
  #u64: BigUint64Array;
  #firstBytes: number;
  #closed = false;

  /** Wraps memory and its mapping; use {@linkcode allocDma}. The buffer owns both from here on. */
  constructor(memory: DmaMemory, mapping: DmaMapping) {
    this.#memory = memory;
    this.#mapping = mapping;
    this.#sizeBytes = memory.size;
    this.#vaddr = memory.vaddr;
    this.#pieceBytes = maxViewBytes();
    this.#pieces = viewPieces(this.#vaddr, this.#sizeBytes);
    const first = this.#pieces[0];
    this.#buffer = first.u8.buffer as ArrayBuffer;
    this.#u8 = first.u8;
    this.#u16 = first.u16;
    this.#u32 = first.u32;
    this.#u64 = first.u64;
    this.#firstBytes = first.size;
  }

  #check(): void {
    if (this.#closed) throw new ClosedError("DMA buffer");
  }

  /** The whole-buffer views exist only when one view can hold the whole buffer. */
  #whole(what: string): void {
    this.#check();
    if (this.#pieces.length > 1) {
      throw new SizeLimitError(`the whole DMA buffer as ${what}`, this.#sizeBytes, this.#pieceBytes, {
        remedy: "this runtime makes no typed array that long (Bun: 4 GiB); take views of parts with " +
          "view(offset, length), or use read32/write32/read64/write64/fill by offset",
      });
    }
  }

  /** Size in bytes (rounded up to the page size), as `Region.size` is a region's. */
  get size(): number {
    return this.#sizeBytes;
  }

  /** The process address of the first byte. */
  get vaddr(): bigint {
    this.#check();
    return this.#vaddr;
  }

  /** The mapper kind that made the mapping. */
  get kind(): IommuKind {
    return this.#mapping.kind;
  }

  /** True when the whole buffer is one run of bus addresses. */
  get contiguous(): boolean {
    return this.#mapping.contiguous;
  }

  /** True when backed by 2 MiB hugepages. */
  get hugepage(): boolean {
    return this.#memory.hugepage;
  }

  /** The size of the pages backing it (2 MiB or the base page size). */
  get pageSize(): number {
    return this.#memory.pageSize;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The bus address a device must be given for the byte at `offset`: no system call. */
  busAddress(offset: number = 0): bigint {
    this.#check();
    return this.#mapping.busAddress(offset);
  }

  /** The whole buffer as bytes (a {@linkcode SizeLimitError} beyond the runtime's largest view: use `view`). */
  get u8(): Uint8Array {
    this.#whole("u8");
    return this.#u8;
  }

  /** The whole buffer as 16-bit words (little-endian on the supported hosts). */
  get u16(): Uint16Array {
    this.#whole("u16");
    return this.#u16;
  }

  /** The whole buffer as 32-bit words. */
  get u32(): Uint32Array {
    this.#whole("u32");
    return this.#u32;
  }

  /** The whole buffer as 64-bit words (a 64-bit store is one store). */
  get u64(): BigUint64Array {
    this.#whole("u64");
    return this.#u64;
  }

  /** The underlying `ArrayBuffer` (detached on close). */
  get arrayBuffer(): ArrayBuffer {
    this.#whole("an ArrayBuffer");
    return this.#buffer;
  }

  /**
   * Typed views over `[offset, offset + length)`: how a program reaches every part of a buffer longer than the
   * runtime's largest typed array (4 GiB on Bun). `offset` must be a multiple of 8; the views are detached when the
   * buffer closes, like the whole-buffer ones.
   *
   * ```ts
   * import { allocDma } from "./buffer.ts";
   * import type { DmaMapper } from "../iommu/types.ts";
   * declare const mapper: DmaMapper;
   * using big = allocDma(mapper, 6 * 2 ** 30);
   * const tail = big.view(big.size - 4096, 4096);
   * tail.u32[0] = 1;
   * console.log(big.read32(big.size - 4096)); // 1
   * ```
   */
  view(offset: number, length: number): DmaView {
    this.#check();
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % 8 !== 0) {
      throw new OutOfRangeError(`DMA buffer view at ${offset}: the offset must be a non-negative multiple of 8`);
    }
    if (!Number.isSafeInteger(length) || length <= 0 || offset + length > this.#sizeBytes) {
      throw new OutOfRangeError(
        `DMA buffer view of ${length} bytes at ${offset}: outside the ${this.#sizeBytes}-byte buffer`,
      );
    }
    if (length > this.#pieceBytes) {
      throw new SizeLimitError(`a DMA buffer view`, length, this.#pieceBytes, {
        remedy: "this runtime makes no typed array that long (Bun: 4 GiB); take several smaller views",
      });
    }
    const buffer = libc.arrayBuffer(this.#vaddr + BigInt(offset), length);
    if (this.#views.length >= this.#prune) {
      this.#views = this.#views.filter((r) => r.deref() !== undefined);
      this.#prune = Math.max(64, this.#views.length * 2);
    }
    this.#views.push(new WeakRef(buffer));
    return { offset, size: length, ...typedViews(buffer, 0, length) };
  }

  /** The piece holding `width` bytes at `offset`, after checking bounds and alignment. */
  #piece(offset: number, width: number): ViewPiece {
    if (!(offset >= 0 && offset + width <= this.#sizeBytes) || offset % width !== 0) {
      throw new OutOfRangeError(
        `DMA buffer access of ${width} bytes at ${offset}: outside the ${this.#sizeBytes}-byte buffer or not ` +
          `${width}-byte aligned`,
      );
    }
    return this.#pieces[Math.floor(offset / this.#pieceBytes)];
  }

  /** Reads the 32-bit word at byte `offset` with `deviceLoad`: a polling loop sees device writes, and the read writes nothing. */
  read32(offset: number): number {
    this.#check();
    if ((offset >>> 0) === offset && (offset & 3) === 0 && offset + 4 <= this.#firstBytes) {
      return deviceLoad(this.#u32, offset >>> 2);
    }
    const p = this.#piece(offset, 4);
    return deviceLoad(p.u32, (offset - p.offset) / 4);
  }

  /** Reads the 64-bit word at byte `offset` with `deviceLoad` (one 8-byte load). */
  read64(offset: number): bigint {
    this.#check();
    const p = this.#piece(offset, 8);
    return deviceLoad(p.u64, (offset - p.offset) / 8);
  }

  /** Writes the 32-bit word at byte `offset`; `value` is an integer from -2^31 to 2^32-1. */
  write32(offset: number, value: number): void {
    this.#check();
    checkIntWidth(value, 32, "DMA buffer write32");
    const p = this.#piece(offset, 4);
    p.u32[(offset - p.offset) / 4] = value;
  }

  /** Writes the 64-bit word at byte `offset` as one store; `value` is a bigint from -2^63 to 2^64-1. */
  write64(offset: number, value: bigint): void {
    this.#check();
    if (typeof value !== "bigint" || value < -(1n << 63n) || value > 0xffffffffffffffffn) {
      throw new OutOfRangeError(`DMA buffer write64 of ${String(value)}: not a 64-bit value`);
    }
    const p = this.#piece(offset, 8);
    p.u64[(offset - p.offset) / 8] = value;
  }

  /** Fills bytes `[start, end)` (default: all) with `value`. */
  fill(value: number, start: number = 0, end: number = this.#sizeBytes): this {
    this.#check();
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end > this.#sizeBytes) {
      throw new OutOfRangeError(`DMA buffer fill of [${start}, ${end}): outside the ${this.#sizeBytes}-byte buffer`);
    }
    for (const p of this.#pieces) {
      const a = Math.max(start, p.offset);
      const b = Math.min(end, p.offset + p.size);
      if (a < b) p.u8.fill(value, a - p.offset, b - p.offset);
    }
    return this;
  }

  /**
   * Unmaps the buffer from the IOMMU, detaches its views, then unmaps the memory (idempotent). Make sure the
   * device no longer uses it first.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    let failure: unknown = null;
    try {
      this.#mapping.unmap();
    } catch (e) {
      failure = e;
    }
    // Detach every view (ours, any made with view(), any the caller made over them) before the memory goes away.
    detachPieces(this.#pieces);
    for (const ref of this.#views) {
      const b = ref.deref();
      if (b && !b.detached) b.transfer(0);
    }
    this.#views = [];
    this.#pieces = [];
    this.#firstBytes = 0;
    this.#buffer = EMPTY;
    this.#u8 = new Uint8Array(EMPTY);
    this.#u16 = new Uint16Array(EMPTY);
    this.#u32 = new Uint32Array(EMPTY);
    this.#u64 = new BigUint64Array(EMPTY);
    // Memory the IOMMU may still reach is never handed back to the process's allocator.
    if (failure === null) this.#memory.close();
    if (failure !== null) throw failure;
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** What `console.log(buf)` shows: size, backing pages, process address and bus address range. */
  toJSON(): DmaBufferSummary {
    const out: DmaBufferSummary = {
      size: byteSize(this.#sizeBytes),
      kind: this.#mapping.kind,
      pages: this.#memory.hugepage ? "2 MiB hugepages" : byteSize(this.#memory.pageSize),
      closed: this.#closed,
    };
    if (this.#closed) return out;
    out.vaddr = hex(this.#vaddr);
    const first = this.#mapping.busAddress(0);
    out.bus = this.#mapping.contiguous
      ? `${hex(first)}-${hex(first + BigInt(this.#sizeBytes - 1))}`
      : `${hex(first)}… (per page)`;
    return out;
  }
}
inspectable(DmaBuffer);

/** {@linkcode DmaBuffer.toJSON}'s plain form of a DMA buffer. */
export interface DmaBufferSummary {
  /** Size, e.g. `4 KiB`. */
  size: string;
  /** The mapper that made its bus addresses. */
  kind: IommuKind;
  /** The backing page size. */
  pages: string;
  /** Whether it is closed. */
  closed: boolean;
  /** Its process address (open buffers). */
  vaddr?: string;
  /** Its bus address range (first-last), or the first address when not one run (open buffers). */
  bus?: string;
}

/**
 * Allocates a DMA buffer of at least `sizeBytes` and maps it through `mapper`.
 *
 * ```ts
 * import { allocDma } from "@vfio-ts/vfio";
 * import type { DmaMapper } from "@vfio-ts/vfio";
 * declare const mapper: DmaMapper;
 * using ring = allocDma(mapper, 16 * 256, { contiguous: true });
 * console.log(ring.busAddress(0).toString(16));
 * ```
 */
export function allocDma(mapper: DmaMapper, sizeBytes: number, options: DmaBufferOptions = {}): DmaBuffer {
  const memory = DmaMemory.alloc(sizeBytes, { hugepages: options.hugepages });
  let mapping: DmaMapping;
  try {
    mapping = mapper.map(memory.vaddr, memory.size);
  } catch (e) {
    memory.close();
    throw e;
  }
  if (options.contiguous && !mapping.contiguous) {
    mapping.unmap();
    memory.close();
    throw new VfioError(
      `the ${memory.size}-byte DMA buffer is not physically contiguous (${mapper.kind} mode, ` +
        `${memory.hugepage ? "2 MiB hugepages" : `${memory.pageSize}-byte pages`})`,
      {
        remedy: memory.hugepage
          ? "keep contiguous buffers within one 2 MiB hugepage, or use an IOMMU"
          : 'use { hugepages: "require" } (reserve some: echo 64 > /proc/sys/vm/nr_hugepages) and at most 2 MiB',
      },
    );
  }
  try {
    return new DmaBuffer(memory, mapping);
  } catch (e) {
    // Nothing may outlive a failed allocation: neither the IOMMU mapping nor the locked memory.
    mapping.unmap();
    memory.close();
    throw e;
  }
}
