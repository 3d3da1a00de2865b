/**
 * The host side of VFIO through sysfs, without opening any device: list PCI devices and IOMMU groups, bind a device
 * to vfio-pci and give it back to its driver, see what the system is using, no-IOMMU mode, mediated devices,
 * hugepages and the process's capabilities. Also re-exported by the package root.
 *
 * ```ts
 * import { groupViabilityBlockers, listPciDevices } from "@vfio-ts/vfio/sysfs";
 * for (const dev of listPciDevices()) {
 *   const blockers = dev.iommuGroup === null ? [] : groupViabilityBlockers(dev.iommuGroup);
 *   console.log(dev.address, dev.driver ?? "no driver", `group ${dev.iommuGroup}`, blockers.length === 0);
 * }
 * ```
 *
 * @module
 */
export { isPciAddress, parsePciAddress, type PciAddress, pciAddress } from "./lib/pci_address.ts";
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
export { type RecordOptions, RECORDS_DIR, recordsDirectory } from "./lib/sysfs/driver_record.ts";
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
export { DeviceLock, lockDevice, type LockOptions } from "./lib/sysfs/lock.ts";
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
  disableNoiommu,
  enableNoiommu,
  type EnableNoiommuOptions,
  type NoiommuStatus,
  noiommuStatus,
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
  checkNoiommuPrivileges,
  hasCapability,
  type NoiommuPrivilegeOptions,
  type ProcessPrivileges,
  processPrivileges,
} from "./lib/sysfs/privileges.ts";
export {
  isSriovPf,
  parseSriovCapability,
  physicalFunction,
  setVfCount,
  type SetVfCountOptions,
  type SetVfCountResult,
  type SriovCapability,
  type SriovStatus,
  sriovStatus,
  vfAddress,
  type VfInfo,
  vfioPciSriovEnabled,
  vfUsers,
  virtualFunctions,
} from "./lib/sysfs/sriov.ts";
