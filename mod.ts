/**
 * vfio-ts: drive a PCI device from user space through Linux VFIO, from Deno or Bun.
 *
 * ```ts
 * import { IrqIndex, openDevice } from "./mod.ts";
 * using dev = openDevice("0000:00:03.0");              // iommufd, type1, or (with { noiommu: true }) no-IOMMU
 * const bar0 = dev.bar(0);                              // mmapped, bounds-checked 8/16/32/64-bit access
 * console.log(bar0.read32(0).toString(16));
 * const buf = dev.allocDma(4096);                       // locked memory with a bus address for the device
 * using irqs = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
 * await irqs.wait(0, { timeoutMs: 1000 });              // does not block the event loop
 * ```
 *
 * @module
 */
export {
  type Capability,
  type CapabilityList,
  capabilityName,
  type ConfigReader,
  configReaderFromBytes,
  findCapability,
  MsiCapability,
  MsixCapability,
  PciExpressCapability,
  PowerManagementCapability,
  walkCapabilities,
} from "./lib/capabilities.ts";
export { type BarRegister, ConfigSpace } from "./lib/config.ts";
export { Container, type Type1Info } from "./lib/container.ts";
export { Device, type DeviceInfo, type DeviceParts, type HotResetDependent, type Owned } from "./lib/device.ts";
export { allocDma, DmaBuffer, type DmaBufferOptions } from "./lib/dma/buffer.ts";
export { IovaAllocator, type IovaAllocatorOptions } from "./lib/dma/iova_allocator.ts";
export { DmaMemory, type DmaMemoryOptions, HUGEPAGE_SIZE, type HugepagePolicy } from "./lib/dma/memory.ts";
export { physicalAddressOf, translatePages } from "./lib/dma/pagemap.ts";
export { allocDmaPool, DmaPool, type DmaPoolOptions } from "./lib/dma/pool.ts";
export * from "./lib/errors.ts";
export { Group, type GroupContainer, type GroupOpenOptions, type GroupStatus } from "./lib/group.ts";
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
export { NoIommuMapper, PhysicalMapping } from "./lib/iommu/noiommu.ts";
export type { DmaMapper, DmaMapping, IoAddressSpace, IommuKind, IovaRange } from "./lib/iommu/types.ts";
export {
  type IrqEnableOptions,
  IrqEventFd,
  IrqIndex,
  type IrqIndexName,
  irqIndexName,
  type IrqInfo,
  irqInfo,
  irqInfoAll,
  IrqSet,
  type IrqWaitOptions,
  type SpinOptions,
  type WaitOptions,
} from "./lib/irq.ts";
export { type IommuChoice, openDevice, type OpenDeviceOptions } from "./lib/open.ts";
export { type MdevIommuChoice, openMediatedDevice, type OpenMediatedDeviceOptions } from "./lib/open_mdev.ts";
export {
  type CdevPathOptions,
  type GroupPath,
  type GroupPathOptions,
  openThroughCdev,
  openThroughGroup,
} from "./lib/open_paths.ts";
export { isPciAddress, parsePciAddress, type PciAddress, pciAddress } from "./lib/pci_address.ts";
export {
  DEFAULT_MAX_SPINS,
  Poller,
  type PollerOptions,
  pollHelperStatus,
  type PollTarget,
  type RingLayout,
  spinUntil,
} from "./lib/poll.ts";
export {
  Region,
  type RegionInfo,
  regionInfo,
  regionName,
  type RegionOptions,
  type RegionType,
  type SparseMmapArea,
} from "./lib/region.ts";
export type { SysfsOptions } from "./lib/sysfs/attr.ts";
export {
  type BindOptions,
  type BindResult,
  bindToVfio,
  describeStep,
  type DriverRecord,
  recordedDriver,
  restoreDriver,
  type RestoreOptions,
  type RestoreResult,
  type SysfsStep,
  unbind,
  type UnbindResult,
  type VfioHolder,
  vfioHolders,
} from "./lib/sysfs/bind.ts";
export { type HugepagePool, type HugepageStatus, hugepageStatus, reserveHugepages } from "./lib/sysfs/hugepages.ts";
export {
  blockDevices,
  type DeviceUse,
  type DeviceUseKind,
  deviceUsers,
  type MountEntry,
  networkInterfaces,
  type OpenNode,
  type ProcessRef,
  SystemScan,
} from "./lib/sysfs/in_use.ts";
export {
  driverKeepsGroupViable,
  type GroupType,
  groupViabilityBlockers,
  iommuGroup,
  type IommuGroupInfo,
  iommuGroupMembers,
  listIommuGroups,
} from "./lib/sysfs/iommu_group.ts";
export {
  createMdev,
  type CreateMdevOptions,
  isMdevOpen,
  isMdevUuid,
  listMdevParentNames,
  listMdevParents,
  listMediatedDevices,
  listMediatedDeviceUuids,
  type MdevParent,
  type MdevType,
  mdevTypes,
  mediatedDevice,
  type MediatedDeviceInfo,
  removeMdev,
} from "./lib/sysfs/mdev.ts";
export {
  disableNoIommu,
  enableNoIommu,
  type EnableNoIommuOptions,
  type NoIommuStatus,
  noIommuStatus,
} from "./lib/sysfs/noiommu.ts";
export {
  findPciDevices,
  listPciDevices,
  parsePciId,
  pciDevice,
  type PciDeviceInfo,
  type PciMatch,
  type PciResource,
} from "./lib/sysfs/pci.ts";
export { loadPciIds, PCI_IDS_PATHS, PciIds, type PciIdsOptions } from "./lib/sysfs/pci_ids.ts";
export {
  CAPABILITIES,
  type CapabilityName,
  checkNoIommuPrivileges,
  hasCapability,
  type NoIommuPrivilegeOptions,
  type ProcessPrivileges,
  processPrivileges,
} from "./lib/sysfs/privileges.ts";
export type { DeviceFd } from "./lib/types.ts";
