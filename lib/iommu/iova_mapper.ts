/**
 * The {@linkcode DmaMapper} of every IOMMU backend whose IOVAs the caller chooses (a type1 container, an iommufd
 * IOAS): it picks an IOVA inside the space's ranges ({@linkcode IovaAllocator}), maps the memory there, and gives
 * the IOVA back on unmap. The kernel pins the pages for as long as they are mapped.
 *
 * ```ts
 * import { IovaMapper } from "@vfio-ts/vfio/iommu";
 * import type { IoAddressSpace } from "@vfio-ts/vfio/iommu";
 * declare const container: IoAddressSpace; // e.g. a type1 Container
 * declare const vaddr: bigint;
 * using mapper = new IovaMapper(container, { kind: "type1" });
 * const m = mapper.map(vaddr, 2 << 20);
 * console.log(m.busAddress(0).toString(16)); // "200000"
 * m.unmap();
 * ```
 * @module
 */
import { libc } from "../../ffi/libc.ts";
import { IovaAllocator } from "../dma/iova_allocator.ts";
import { ClosedError, OutOfRangeError } from "../errors.ts";
import { hex } from "../hex.ts";
import { explainMapError } from "./map_error.ts";
import type { DmaMapper, DmaMapping, IoAddressSpace, IommuKind } from "./types.ts";

/** Options of {@linkcode IovaMapper}. */
export interface IovaMapperOptions {
  /** The backend's kind, reported by the mapper and its mappings (default `"type1"`). */
  kind?: Exclude<IommuKind, "noiommu">;
  /**
   * Highest IOVA to hand out (inclusive): the device's DMA mask, e.g. `(1n << 28n) - 1n` for QEMU's edu.
   * Default: whatever the space accepts.
   */
  maxIova?: bigint;
  /** IOVAs below this are never used (default 64 KiB). */
  reserveBelow?: bigint;
  /**
   * The lowest IOVA to hand out, e.g. `0x1_0000_0000n` to put every mapping above 4 GiB. It must lie inside the
   * space's IOVA ranges: else the first {@linkcode IovaMapper.map} throws `OutOfRangeError` naming them.
   */
  iovaBase?: bigint;
}

function smallestPage(pageSizes: bigint): number {
  if (pageSizes <= 0n) return 4096;
  let shift = 0;
  while (((pageSizes >> BigInt(shift)) & 1n) === 0n) shift++;
  return Math.max(2 ** shift, 1);
}

/**
 * One IOVA mapping: the device sees `[iova, iova + size)`, always contiguous.
 *
 * ```ts
 * import type { IovaMapping } from "@vfio-ts/vfio/iommu";
 * declare const m: IovaMapping;
 * console.log(m.iova === m.busAddress(0)); // true
 * ```
 */
export class IovaMapping implements DmaMapping {
  /** The backend that made it. */
  readonly kind: IommuKind;
  /** Always true: an IOVA range is contiguous on the bus whatever the physical pages. */
  readonly contiguous = true;
  readonly #iova: bigint;
  readonly #iovaNumber: number; // when iova + size < 2^53 (always, in practice): one BigInt per lookup
  readonly #sizeBytes: number;
  #unmap: ((m: IovaMapping) => void) | null;

  /** Made by {@linkcode IovaMapper.map}. */
  constructor(kind: IommuKind, iova: bigint, sizeBytes: number, unmap: (m: IovaMapping) => void) {
    this.kind = kind;
    this.#iova = iova;
    this.#iovaNumber = iova + BigInt(sizeBytes) <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(iova) : -1;
    this.#sizeBytes = sizeBytes;
    this.#unmap = unmap;
  }

  /** The IOVA of the first byte. */
  get iova(): bigint {
    return this.#iova;
  }

  /** Size of the mapping in bytes. */
  get size(): number {
    return this.#sizeBytes;
  }

  /** True once unmapped. */
  get unmapped(): boolean {
    return this.#unmap === null;
  }

  /** The IOVA of the byte at `offset`. */
  busAddress(offset: number = 0): bigint {
    if (this.#unmap === null) throw new ClosedError("IOVA DMA mapping");
    if (!(offset >= 0 && offset < this.#sizeBytes) || !Number.isInteger(offset)) {
      throw new OutOfRangeError(`DMA offset ${offset} outside the mapping's ${this.#sizeBytes} bytes`);
    }
    return this.#iovaNumber >= 0 ? BigInt(this.#iovaNumber + offset) : this.#iova + BigInt(offset);
  }

  /** Unmaps it from the IOMMU and frees the IOVA (idempotent). */
  unmap(): void {
    const unmap = this.#unmap;
    if (unmap === null) return;
    this.#unmap = null;
    unmap(this);
  }
}

/**
 * A {@linkcode DmaMapper} over any {@linkcode IoAddressSpace}: allocates IOVAs, maps, unmaps, and unmaps whatever
 * is left on close.
 *
 * ```ts
 * import { IovaMapper } from "@vfio-ts/vfio/iommu";
 * import type { IoAddressSpace } from "@vfio-ts/vfio/iommu";
 * declare const space: IoAddressSpace;
 * declare const vaddr: bigint;
 * const mapper = new IovaMapper(space, { maxIova: (1n << 28n) - 1n });
 * console.log(mapper.map(vaddr, 4096).busAddress(0)); // 65536n
 * mapper.close();
 * ```
 */
export class IovaMapper implements DmaMapper {
  /** The backend: `"type1"` or `"iommufd"`. */
  readonly kind: IommuKind;
  readonly #space: IoAddressSpace;
  readonly #options: IovaMapperOptions;
  #iovas: IovaAllocator | null = null;
  #minPage = 4096;
  readonly #live = new Set<IovaMapping>();
  #closed = false;

  /**
   * Builds a mapper over `space`. The space's IOVA ranges and page sizes are read at the first {@linkcode map}
   * (a type1 container has them only once its IOMMU model is set, an IOAS once a device is attached).
   */
  constructor(space: IoAddressSpace, options: IovaMapperOptions = {}) {
    this.kind = options.kind ?? "type1";
    this.#space = space;
    this.#options = options;
  }

  /** The IOVA allocator (created from the space's ranges on first use). */
  get allocator(): IovaAllocator {
    if (this.#iovas === null) {
      this.#minPage = Math.max(smallestPage(this.#space.pageSizes), 1);
      this.#iovas = new IovaAllocator(this.#space.iovaRanges, {
        minAlign: Math.max(this.#minPage, 4096),
        maxIova: this.#options.maxIova,
        reserveBelow: this.#options.reserveBelow,
        base: this.#options.iovaBase,
      });
    }
    return this.#iovas;
  }

  /** The lowest IOVA this mapper hands out when one was chosen ({@linkcode IovaMapperOptions.iovaBase}). */
  get iovaBase(): bigint | undefined {
    return this.#options.iovaBase;
  }

  /** Number of live mappings. */
  get mappingCount(): number {
    return this.#live.size;
  }

  /**
   * Maps `sizeBytes` at `vaddr` (both multiples of the IOMMU page size) at a fresh IOVA, readable and writable by
   * the device.
   */
  map(vaddr: bigint, sizeBytes: number): IovaMapping {
    if (this.#closed) throw new ClosedError(`${this.kind} DMA mapper`);
    const iovas = this.allocator;
    const page = Math.max(this.#minPage, libc.pageSize);
    if (vaddr <= 0n || vaddr % BigInt(page) !== 0n) {
      throw new OutOfRangeError(`DMA address ${hex(vaddr)} is not aligned to the ${page}-byte IOMMU page`, {
        remedy: "map memory from DmaMemory.alloc / allocDma, which is page-aligned",
      });
    }
    const iova = iovas.alloc(sizeBytes);
    try {
      this.#space.mapDma(vaddr, iova, sizeBytes);
    } catch (e) {
      iovas.free(iova);
      throw explainMapError(e, "MAP_DMA", iova, sizeBytes);
    }
    const m = new IovaMapping(this.kind, iova, sizeBytes, (x) => this.#unmapOne(x));
    this.#live.add(m);
    return m;
  }

  #unmapOne(m: IovaMapping): void {
    this.#live.delete(m);
    this.#space.unmapDma(m.iova, m.size);
    // Only an IOVA the kernel really let go of is reused.
    this.#iovas!.free(m.iova);
  }

  /**
   * Unmaps every mapping still mapped (idempotent), each even when another fails: one failure is thrown as it is,
   * several as a SuppressedError chain.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    using stack = new DisposableStack();
    for (const m of [...this.#live]) stack.defer(() => m.unmap());
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
