/**
 * The kernel ABI layer in one import: VFIO and iommufd ioctl numbers, flags and argument structs, PCI
 * config-space facts, capability numbers, sysfs resource flags, the ioctl encoders and the struct-view facility.
 *
 * ```ts
 * import { VFIO_GROUP_FLAGS_VIABLE, VFIO_GROUP_GET_STATUS, VfioGroupStatus } from "@vfio-ts/vfio/abi";
 * const status = VfioGroupStatus.alloc();
 * status.argsz = VfioGroupStatus.size;
 * // ioctl(groupFd, VFIO_GROUP_GET_STATUS, status.bytes);
 * const viable = (status.flags & VFIO_GROUP_FLAGS_VIABLE) !== 0;
 * ```
 * @module
 */

export * from "./capability.ts";
export * from "./if.ts";
export * from "./ioctl.ts";
export * from "./iommufd.ts";
export * from "./ioport.ts";
export * from "./pci.ts";
export * from "./route.ts";
export * from "./struct.ts";
export * from "./vfio.ts";
