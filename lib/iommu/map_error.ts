/**
 * What a failed DMA map means, for both IOMMU backends (`VFIO_IOMMU_MAP_DMA` on a type1 container,
 * `IOMMU_IOAS_MAP` on an iommufd IOAS): the kernel's errno stays the error's `code` and `errno` (a
 * {@linkcode DmaMapError}, a `SystemError`), and the target and remedy say which mapping and what to do.
 *
 * ```ts
 * import { SystemError } from "@vfio-ts/vfio";
 * import { explainMapError } from "./map_error.ts";
 * const e = explainMapError(new SystemError("ioctl", 17), "VFIO_IOMMU_MAP_DMA", 0x10000n, 4096) as SystemError;
 * console.log(e.code, e.message); // EEXIST ioctl VFIO_IOMMU_MAP_DMA IOVA 0x10000 (+0x1000): file already exists ...
 * ```
 * @module
 */
import { memlockRemedy } from "../dma/memory.ts";
import { DmaMapError, SystemError, type TargetKind } from "../errors.ts";
import { hex } from "../hex.ts";
import type { IovaRange } from "./types.ts";

/**
 * Rewords a failed map of `size` bytes at `iova` through `ioctl`: a {@linkcode DmaMapError} with the same errno,
 * the mapping as its target and a remedy for that errno; `ranges` (iommufd) are the usable IOVA ranges, named
 * when the mapping lies outside them. Anything else, or an error already explained, is returned as it is.
 */
export function explainMapError(
  e: unknown,
  ioctl: string,
  iova: bigint,
  size: number,
  ranges?: readonly IovaRange[],
): unknown {
  if (!(e instanceof SystemError) || e instanceof DmaMapError) return e;
  const last = iova + BigInt(size) - 1n;
  const remedy = ranges && !ranges.some((r) => iova >= r.start && last <= r.end)
    ? `outside the IOAS's usable IOVA ranges: pick an IOVA inside ${
      ranges.map((r) => `${hex(r.start)}-${hex(r.end)}`).join(", ")
    }`
    : mapRemedy(e.code, e.targetKind, size);
  if (!remedy) return e;
  const target = `${ioctl} IOVA ${hex(iova)} (+${hex(size)})`;
  return new DmaMapError(e.syscall, e.errno, { target, kind: e.targetKind, remedy });
}

/** What to do when the type1 container's `dma_entry_limit` is used up. */
export const DMA_ENTRY_LIMIT_REMEDY = "the type1 IOMMU allows at most `dma_entry_limit` mappings (65535 by " +
  "default): use hugepages and pools (fewer, larger mappings), or raise it: " +
  "`modprobe vfio_iommu_type1 dma_entry_limit=1048576` or " +
  "`echo 1048576 > /sys/module/vfio_iommu_type1/parameters/dma_entry_limit`";

/** The remedy for a refused map by errno; `kind` (the failed ioctl's, from the backend) tells iommufd apart. */
function mapRemedy(code: string, kind: TargetKind, size: number): string | undefined {
  switch (code) {
    case "ENOMEM":
      return `${kind === "iommufd-ioctl" ? "iommufd counts pinned pages per user: " : ""}${memlockRemedy(size)}`;
    case "ENOSPC":
      return DMA_ENTRY_LIMIT_REMEDY;
    case "EEXIST":
      return "overlaps an existing mapping: unmap it first, and let one IovaMapper own each address space";
    case "EINVAL":
      return "rejected (unaligned, outside the IOVA ranges, or zero size): map page-aligned memory at a " +
        "page-aligned IOVA inside the reported iovaRanges";
    default:
      return undefined;
  }
}
