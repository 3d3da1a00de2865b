/**
 * The one IOMMU interface that DMA memory maps through, whatever the kernel path: a type1 container, an iommufd
 * IOAS, or no IOMMU at all (physical addresses). A {@linkcode DmaMapper} turns process memory into bus addresses
 * a device can use; everything above it (DMA buffers, pools, drivers) is the same in every mode.
 *
 * ```ts
 * import type { DmaMapper } from "@vfio-ts/vfio/iommu";
 * function busAddressOf(mapper: DmaMapper, vaddr: bigint, size: number): bigint {
 *   const m = mapper.map(vaddr, size);
 *   return m.busAddress(0);
 * }
 * ```
 * @module
 */

/** How a device's DMA is translated: `type1`/`iommufd` (IOVA through an IOMMU) or `noiommu` (physical addresses). */
export type IommuKind = "type1" | "iommufd" | "noiommu";

/** An inclusive range of usable I/O virtual addresses. */
export interface IovaRange {
  /** First usable IOVA. */
  readonly start: bigint;
  /** Last usable IOVA (inclusive). */
  readonly end: bigint;
}

/**
 * An address space whose IOVAs the caller chooses: a type1 container or an iommufd IOAS.
 * The {@linkcode DmaMapper} of those backends allocates IOVAs inside {@linkcode iovaRanges} and calls these.
 */
export interface IoAddressSpace {
  /** Maps `sizeBytes` of process memory at `vaddr` to `iova`, readable and writable by the device. */
  mapDma(vaddr: bigint, iova: bigint, sizeBytes: number): void;
  /** Removes exactly a mapping made by {@linkcode mapDma} (type1v2 refuses to split one). */
  unmapDma(iova: bigint, sizeBytes: number): void;
  /** The IOVA ranges the IOMMU accepts. */
  readonly iovaRanges: readonly IovaRange[];
  /** Bitmap of supported IOMMU page sizes (bit n set: 2^n bytes). */
  readonly pageSizes: bigint;
}

/** One mapping of process memory for DMA. */
export interface DmaMapping {
  /** The backend that made it. */
  readonly kind: IommuKind;
  /** True when the bus addresses of the whole range are one contiguous run. */
  readonly contiguous: boolean;
  /** The bus address (IOVA, or physical address in no-IOMMU mode) of the byte at `offset`. */
  busAddress(offset: number): bigint;
  /** Removes the mapping (idempotent). */
  unmap(): void;
}

/** Maps process memory for a device's DMA: the common face of the type1, iommufd and no-IOMMU backends. */
export interface DmaMapper {
  /** Which backend this is. */
  readonly kind: IommuKind;
  /** Maps `sizeBytes` at `vaddr` (page-aligned, already locked in memory) and returns the mapping. */
  map(vaddr: bigint, sizeBytes: number): DmaMapping;
  /** Unmaps everything still mapped (idempotent). */
  close(): void;
}
