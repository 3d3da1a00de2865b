/**
 * The kernel ABI as vfio-ts uses it, every item checked against the kernel's own headers by a C program: VFIO and
 * iommufd ioctl numbers, flags and argument structs (`linux/vfio.h`, `linux/iommufd.h`), PCI config-space registers
 * and capability IDs (`linux/pci_regs.h`), sysfs resource flags, the `_IO`/`_IOW`… encoders and typed zero-copy struct
 * views: what `vfio-bindings` is to a rust-vmm user.
 *
 * ```ts
 * import { VFIO_GROUP_FLAGS_VIABLE, VFIO_GROUP_GET_STATUS, VfioGroupStatus } from "@vfio-ts/vfio/abi";
 * const status = VfioGroupStatus.alloc();
 * status.argsz = VfioGroupStatus.size;
 * // ioctl(groupFd, VFIO_GROUP_GET_STATUS, status.bytes);
 * const viable = (status.flags & VFIO_GROUP_FLAGS_VIABLE) !== 0;
 * console.log(VFIO_GROUP_GET_STATUS.toString(16), viable);
 * ```
 *
 * @module
 */
export * from "./lib/abi/mod.ts";
