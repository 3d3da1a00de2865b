/**
 * The no-IOMMU {@linkcode DmaMapper}: a device without an IOMMU in front of it sees physical memory, so "mapping"
 * means looking up the physical address of every page once (one `pread` of `/proc/self/pagemap` per mapping) and
 * keeping them in a table; {@linkcode DmaMapping.busAddress} is then a table lookup with no system call.
 * Nothing is mapped in the kernel, so unmapping only forgets the table.
 *
 * Pinning caveats (no IOMMU means no kernel pin): the addresses stay right only while the pages stay put.
 * `mlock` keeps pages resident but does not stop migration (compaction, NUMA balancing, memory hot-unplug);
 * hugetlb pages are never migrated, so prefer hugepages for no-IOMMU DMA. Reading frame numbers needs
 * CAP_SYS_ADMIN.
 *
 * ```ts
 * import { NoiommuMapper } from "@vfio-ts/vfio/iommu";
 * import { DmaMemory } from "@vfio-ts/vfio";
 * using mem = DmaMemory.alloc(1 << 21, { hugepages: "require" });
 * const mapper = new NoiommuMapper();
 * const m = mapper.map(mem.vaddr, mem.size);
 * console.log(m.contiguous, m.busAddress(0x1000).toString(16)); // true, a physical address
 * mapper.close();
 * ```
 * @module
 */
import { libc } from "../../ffi/libc.ts";
import { translatePages } from "../dma/pagemap.ts";
import { ClosedError, OutOfRangeError } from "../errors.ts";
import { hex } from "../hex.ts";
import type { DmaMapper, DmaMapping, IommuKind } from "./types.ts";

/**
 * One no-IOMMU mapping: the physical address of each base page of the range, looked up at map time.
 *
 * ```ts
 * import { NoiommuMapper } from "@vfio-ts/vfio/iommu";
 * declare const vaddr: bigint;
 * const m = new NoiommuMapper().map(vaddr, 8192);
 * console.log(m.busAddress(4096 + 16) === m.busAddress(4096) + 16n); // true
 * ```
 */
export class PhysicalMapping implements DmaMapping {
  /** Always `"noiommu"`. */
  readonly kind: IommuKind = "noiommu";
  /** True when every page follows the previous one physically (a 2 MiB hugepage always does). */
  readonly contiguous: boolean;
  // Physical addresses as numbers (exact: they are far below 2^53), so a lookup makes one BigInt, not three.
  readonly #pages: Float64Array;
  readonly #pageSize: number;
  readonly #sizeBytes: number;
  readonly #base: number;
  #onUnmap: ((m: PhysicalMapping) => void) | null;
  #unmapped = false;

  /** Builds a mapping from per-page physical addresses (as {@linkcode translatePages} returns them). */
  constructor(pages: BigUint64Array, pageSize: number, onUnmap: ((m: PhysicalMapping) => void) | null = null) {
    this.#pages = Float64Array.from(pages, (p) => {
      if (p > BigInt(Number.MAX_SAFE_INTEGER)) throw new OutOfRangeError(`physical address ${hex(p)} ≥ 2^53`);
      return Number(p);
    });
    this.#pageSize = pageSize;
    this.#sizeBytes = pages.length * pageSize;
    this.#base = this.#pages[0];
    this.#onUnmap = onUnmap;
    const step = BigInt(pageSize);
    let contiguous = true;
    for (let i = 1; i < pages.length && contiguous; i++) contiguous = pages[i] === pages[i - 1] + step;
    this.contiguous = contiguous;
  }

  /** Size of the mapped range in bytes. */
  get size(): number {
    return this.#sizeBytes;
  }

  /** The physical address of the byte at `offset`: an O(1) table lookup, no system call. */
  busAddress(offset: number = 0): bigint {
    if (this.#unmapped) throw new ClosedError("no-IOMMU DMA mapping");
    if (!(offset >= 0 && offset < this.#sizeBytes) || !Number.isInteger(offset)) {
      throw new OutOfRangeError(`DMA offset ${offset} outside the mapping's ${this.#sizeBytes} bytes`);
    }
    if (this.contiguous) return BigInt(this.#base + offset);
    const page = Math.floor(offset / this.#pageSize);
    return BigInt(this.#pages[page] + (offset - page * this.#pageSize));
  }

  /** Forgets the table (idempotent); there is nothing to unmap in the kernel. */
  unmap(): void {
    if (this.#unmapped) return;
    this.#unmapped = true;
    const cb = this.#onUnmap;
    this.#onUnmap = null;
    cb?.(this);
  }
}

/**
 * The no-IOMMU {@linkcode DmaMapper}: bus addresses are physical addresses (needs CAP_SYS_ADMIN to read them).
 *
 * ```ts
 * import { NoiommuMapper } from "@vfio-ts/vfio/iommu";
 * declare const vaddr: bigint;
 * using mapper = new NoiommuMapper();
 * const m = mapper.map(vaddr, 4096);
 * console.log(m.busAddress(0).toString(16));
 * ```
 */
export class NoiommuMapper implements DmaMapper {
  /** Always `"noiommu"`. */
  readonly kind: IommuKind = "noiommu";
  readonly #live = new Set<PhysicalMapping>();
  #closed = false;

  /**
   * Looks up the physical address of every page of `[vaddr, vaddr + sizeBytes)` (page-aligned, populated, locked)
   * with one pagemap read.
   */
  map(vaddr: bigint, sizeBytes: number): PhysicalMapping {
    if (this.#closed) throw new ClosedError("no-IOMMU DMA mapper");
    const m = new PhysicalMapping(translatePages(vaddr, sizeBytes), libc.pageSize, (x) => this.#live.delete(x));
    this.#live.add(m);
    return m;
  }

  /** Number of mappings not yet unmapped. */
  get mappingCount(): number {
    return this.#live.size;
  }

  /** Forgets every mapping (idempotent); later `map` calls throw `ClosedError`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const m of [...this.#live]) m.unmap();
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
