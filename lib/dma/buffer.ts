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
 * console.log(buf.iova.toString(16), buf.read32(0).toString(16));
 * ```
 * @module
 */
import { libc } from "../../ffi/libc.ts";
import { ClosedError, OutOfRangeError, VfioError } from "../errors.ts";
import type { DmaMapper, DmaMapping, IommuKind } from "../iommu/types.ts";
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

/**
 * A DMA buffer. Its typed views cover the whole buffer; reads of memory the device may change while the program
 * polls must use {@linkcode read32}/{@linkcode read64} (`Atomics.load`): Bun's JIT hoists plain typed-array loads
 * out of loops.
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
  #buffer: ArrayBuffer;
  #u8: Uint8Array;
  #u16: Uint16Array;
  #u32: Uint32Array;
  #u64: BigUint64Array;
  #closed = false;

  /** Wraps memory and its mapping; use {@linkcode allocDma}. The buffer owns both from here on. */
  constructor(memory: DmaMemory, mapping: DmaMapping) {
    this.#memory = memory;
    this.#mapping = mapping;
    this.#sizeBytes = memory.sizeBytes;
    this.#vaddr = memory.vaddr;
    this.#buffer = libc.arrayBuffer(this.#vaddr, this.#sizeBytes);
    this.#u8 = new Uint8Array(this.#buffer);
    this.#u16 = new Uint16Array(this.#buffer);
    this.#u32 = new Uint32Array(this.#buffer);
    this.#u64 = new BigUint64Array(this.#buffer);
  }

  #check(): void {
    if (this.#closed) throw new ClosedError("DMA buffer");
  }

  /** Size in bytes (rounded up to the page size). */
  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  /** The process address of the first byte. */
  get vaddr(): bigint {
    this.#check();
    return this.#vaddr;
  }

  /** The bus address of the first byte (IOVA, or physical address without an IOMMU). */
  get iova(): bigint {
    this.#check();
    return this.#mapping.busAddress(0);
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

  /** The whole buffer as bytes. */
  get u8(): Uint8Array {
    this.#check();
    return this.#u8;
  }

  /** The whole buffer as 16-bit words (little-endian on the supported hosts). */
  get u16(): Uint16Array {
    this.#check();
    return this.#u16;
  }

  /** The whole buffer as 32-bit words. */
  get u32(): Uint32Array {
    this.#check();
    return this.#u32;
  }

  /** The whole buffer as 64-bit words (a 64-bit store is one store). */
  get u64(): BigUint64Array {
    this.#check();
    return this.#u64;
  }

  /** The underlying `ArrayBuffer` (detached on close). */
  get arrayBuffer(): ArrayBuffer {
    this.#check();
    return this.#buffer;
  }

  #index(offset: number, width: number): number {
    if (!(offset >= 0 && offset + width <= this.#sizeBytes) || offset % width !== 0) {
      throw new OutOfRangeError(
        `DMA buffer access of ${width} bytes at ${offset}: outside the ${this.#sizeBytes}-byte buffer or not ` +
          `${width}-byte aligned`,
      );
    }
    return offset / width;
  }

  /** Reads the 32-bit word at byte `offset` with `Atomics.load`, so a polling loop sees device writes. */
  read32(offset: number): number {
    this.#check();
    return Atomics.load(this.#u32, this.#index(offset, 4));
  }

  /** Reads the 64-bit word at byte `offset` with `Atomics.load`. */
  read64(offset: number): bigint {
    this.#check();
    return Atomics.load(this.#u64, this.#index(offset, 8));
  }

  /** Writes the 32-bit word at byte `offset`. */
  write32(offset: number, value: number): void {
    this.#check();
    this.#u32[this.#index(offset, 4)] = value;
  }

  /** Writes the 64-bit word at byte `offset` as one store. */
  write64(offset: number, value: bigint): void {
    this.#check();
    this.#u64[this.#index(offset, 8)] = value;
  }

  /** Fills bytes `[start, end)` (default: all) with `value`. */
  fill(value: number, start: number = 0, end: number = this.#sizeBytes): this {
    this.#check();
    this.#u8.fill(value, start, end);
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
    // Detach every view (ours and any the caller made over `arrayBuffer`) before the memory goes away.
    this.#buffer.transfer(0);
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
    mapping = mapper.map(memory.vaddr, memory.sizeBytes);
  } catch (e) {
    memory.close();
    throw e;
  }
  if (options.contiguous && !mapping.contiguous) {
    mapping.unmap();
    memory.close();
    throw new VfioError(
      `the ${memory.sizeBytes}-byte DMA buffer is not physically contiguous (${mapper.kind} mode, ` +
        `${memory.hugepage ? "2 MiB hugepages" : `${memory.pageSize}-byte pages`})`,
      {
        remedy: memory.hugepage
          ? "keep contiguous buffers within one 2 MiB hugepage, or use an IOMMU"
          : 'use { hugepages: "require" } (reserve some: echo 64 > /proc/sys/vm/nr_hugepages) and at most 2 MiB',
      },
    );
  }
  return new DmaBuffer(memory, mapping);
}
