/**
 * The IOMMU side of VFIO, one level below `openDevice`: the type1 container and its groups, iommufd with its I/O
 * address spaces and device binding, IOVA allocation and mapping, and the no-IOMMU physical mapper. Also re-exported
 * by the package root.
 *
 * ```ts
 * import { Iommufd } from "@vfio-ts/vfio/iommu";
 * using iommufd = Iommufd.open();
 * using ioas = iommufd.allocIoas();
 * console.log(ioas.id, ioas.iovaRanges);
 * ```
 *
 * @module
 */
export { Container, type Type1Info } from "./lib/container.ts";
export { IovaAllocator, type IovaAllocatorOptions } from "./lib/dma/iova_allocator.ts";
export { Group, type GroupContainer, type GroupOpenOptions, type GroupStatus, type GroupSummary } from "./lib/group.ts";
export type { AddressSpaceSummary } from "./lib/inspect.ts";
export {
  attachIoas,
  bindIommufd,
  detachIoas,
  Ioas,
  Iommufd,
  type IommufdBinding,
  type IommuHwInfoResult,
} from "./lib/iommu/iommufd.ts";
export { IovaMapper, type IovaMapperOptions, IovaMapping } from "./lib/iommu/iova_mapper.ts";
export { NoiommuMapper, PhysicalMapping } from "./lib/iommu/noiommu.ts";
export type { DmaMapper, DmaMapping, IoAddressSpace, IommuKind, IovaRange } from "./lib/iommu/types.ts";
export {
  type CdevPathOptions,
  type GroupPath,
  type GroupPathOptions,
  openThroughCdev,
  openThroughGroup,
} from "./lib/open_paths.ts";
