/**
 * The VFIO user-space ABI from the Linux 6.12 uapi header `linux/vfio.h`: ioctl numbers, flag bits, PCI region
 * and IRQ indexes, capability ids, and the argument structs as {@linkcode StructDef}s.
 *
 * Every VFIO ioctl is encoded with `_IO` (no size): the kernel reads the struct size from its leading `argsz`
 * field, so callers set `argsz` before each call. Names are the kernel's own; every value here is checked
 * against the real header by `tests/unit/abi.test.ts`.
 *
 * ```ts
 * import { VFIO_DEVICE_GET_REGION_INFO, VFIO_PCI_BAR0_REGION_INDEX, VfioRegionInfo } from "@vfio-ts/vfio/abi";
 * const info = VfioRegionInfo.alloc();
 * info.argsz = VfioRegionInfo.size;
 * info.index = VFIO_PCI_BAR0_REGION_INDEX;
 * // ioctl(deviceFd, VFIO_DEVICE_GET_REGION_INFO, info.bytes); then read info.size, info.offset, info.flags
 * ```
 * @module
 */

import { _IO } from "./ioctl.ts";
import {
  type BigIntField,
  defineStruct,
  i32,
  type NumberField,
  struct,
  type StructDef,
  type StructField,
  tail,
  type TailField,
  u16,
  u32,
  u64,
  u8,
} from "./struct.ts";

// ---------------------------------------------------------------------------------------------------------------
// API version and extensions (arguments of VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU)
// ---------------------------------------------------------------------------------------------------------------

/** The VFIO API version VFIO_GET_API_VERSION returns. */
export const VFIO_API_VERSION = 0;
/** Extension/IOMMU model: x86-style type1 IOMMU. */
export const VFIO_TYPE1_IOMMU = 1;
/** Extension/IOMMU model: POWER sPAPR TCE IOMMU. */
export const VFIO_SPAPR_TCE_IOMMU = 2;
/** Extension/IOMMU model: type1 v2 (stricter unmap semantics); the one to pick on x86_64 and aarch64. */
export const VFIO_TYPE1v2_IOMMU = 3;
/** Extension: the IOMMU enforces DMA cache coherence. */
export const VFIO_DMA_CC_IOMMU = 4;
/** Extension: POWER EEH error recovery. */
export const VFIO_EEH = 5;
/** Extension/IOMMU model: nesting type1 (obsolete). */
export const VFIO_TYPE1_NESTING_IOMMU = 6;
/** Extension/IOMMU model: sPAPR TCE v2. */
export const VFIO_SPAPR_TCE_v2_IOMMU = 7;
/** Extension/IOMMU model: no IOMMU at all (unsafe mode, no DMA isolation). */
export const VFIO_NOIOMMU_IOMMU = 8;
/** Extension: type1 supports VFIO_DMA_UNMAP_FLAG_ALL. */
export const VFIO_UNMAP_ALL = 9;
/** Extension: type1 supports updating the vaddr of a mapping (VFIO_DMA_MAP_FLAG_VADDR). */
export const VFIO_UPDATE_VADDR = 10;

// ---------------------------------------------------------------------------------------------------------------
// ioctl numbers
// ---------------------------------------------------------------------------------------------------------------

/** The ioctl type byte of VFIO, the character `;`. */
export const VFIO_TYPE = 0x3b;
/** First command number of VFIO's ioctls. */
export const VFIO_BASE = 100;

/** Container: returns the API version (compare with VFIO_API_VERSION). */
export const VFIO_GET_API_VERSION: number = _IO(VFIO_TYPE, VFIO_BASE + 0);
/** Container: returns > 0 if the extension passed as the argument is supported. */
export const VFIO_CHECK_EXTENSION: number = _IO(VFIO_TYPE, VFIO_BASE + 1);
/** Container: selects the IOMMU model passed as the argument (after a group is attached). */
export const VFIO_SET_IOMMU: number = _IO(VFIO_TYPE, VFIO_BASE + 2);
/** Group: fills a vfio_group_status (is the group viable, is a container set). */
export const VFIO_GROUP_GET_STATUS: number = _IO(VFIO_TYPE, VFIO_BASE + 3);
/** Group: attaches the group to the container whose fd is pointed to by the argument. */
export const VFIO_GROUP_SET_CONTAINER: number = _IO(VFIO_TYPE, VFIO_BASE + 4);
/** Group: detaches the group from its container. */
export const VFIO_GROUP_UNSET_CONTAINER: number = _IO(VFIO_TYPE, VFIO_BASE + 5);
/** Group: returns a device fd for the NUL-terminated device name (e.g. "0000:00:03.0") passed as the argument. */
export const VFIO_GROUP_GET_DEVICE_FD: number = _IO(VFIO_TYPE, VFIO_BASE + 6);
/** Device: fills a vfio_device_info (flags, number of regions and IRQ indexes, capabilities). */
export const VFIO_DEVICE_GET_INFO: number = _IO(VFIO_TYPE, VFIO_BASE + 7);
/** Device: fills a vfio_region_info for the region index given in it (size, fd offset, flags, caps). */
export const VFIO_DEVICE_GET_REGION_INFO: number = _IO(VFIO_TYPE, VFIO_BASE + 8);
/** Device: fills a vfio_irq_info for the IRQ index given in it (vector count, flags). */
export const VFIO_DEVICE_GET_IRQ_INFO: number = _IO(VFIO_TYPE, VFIO_BASE + 9);
/** Device: sets up, triggers, masks or unmasks interrupts as described by a vfio_irq_set. */
export const VFIO_DEVICE_SET_IRQS: number = _IO(VFIO_TYPE, VFIO_BASE + 10);
/** Device: resets the device (function-level reset or equivalent). */
export const VFIO_DEVICE_RESET: number = _IO(VFIO_TYPE, VFIO_BASE + 11);
/** Device: lists, in a vfio_pci_hot_reset_info, the devices a bus/slot hot reset would affect. */
export const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: number = _IO(VFIO_TYPE, VFIO_BASE + 12);
/** Device: performs a PCI bus/slot hot reset, proving ownership of the affected groups (vfio_pci_hot_reset). */
export const VFIO_DEVICE_PCI_HOT_RESET: number = _IO(VFIO_TYPE, VFIO_BASE + 13);
/** Device: queries a mediated graphics device's plane (vfio_device_gfx_plane_info). */
export const VFIO_DEVICE_QUERY_GFX_PLANE: number = _IO(VFIO_TYPE, VFIO_BASE + 14);
/** Device: returns a dma-buf fd for a graphics plane id. */
export const VFIO_DEVICE_GET_GFX_DMABUF: number = _IO(VFIO_TYPE, VFIO_BASE + 15);
/** Device: makes writes of a value to a device-fd offset happen when an eventfd fires (vfio_device_ioeventfd). */
export const VFIO_DEVICE_IOEVENTFD: number = _IO(VFIO_TYPE, VFIO_BASE + 16);
/** Device: gets, sets or probes a device feature (vfio_device_feature plus feature data). */
export const VFIO_DEVICE_FEATURE: number = _IO(VFIO_TYPE, VFIO_BASE + 17);
/** Device (cdev): binds the device to an iommufd (vfio_device_bind_iommufd), returning its device id. */
export const VFIO_DEVICE_BIND_IOMMUFD: number = _IO(VFIO_TYPE, VFIO_BASE + 18);
/** Device (cdev): attaches the device to an iommufd IOAS or page table (vfio_device_attach_iommufd_pt). */
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT: number = _IO(VFIO_TYPE, VFIO_BASE + 19);
/** Device (cdev): detaches the device from its iommufd IOAS or page table (vfio_device_detach_iommufd_pt). */
export const VFIO_DEVICE_DETACH_IOMMUFD_PT: number = _IO(VFIO_TYPE, VFIO_BASE + 20);
/** Container (type1): fills a vfio_iommu_type1_info (page sizes, IOVA ranges and other caps). */
export const VFIO_IOMMU_GET_INFO: number = _IO(VFIO_TYPE, VFIO_BASE + 12);
/** Container (type1): maps process memory for device DMA at an IOVA (vfio_iommu_type1_dma_map). */
export const VFIO_IOMMU_MAP_DMA: number = _IO(VFIO_TYPE, VFIO_BASE + 13);
/** Container (type1): unmaps an IOVA range (vfio_iommu_type1_dma_unmap); the unmapped size is written back. */
export const VFIO_IOMMU_UNMAP_DMA: number = _IO(VFIO_TYPE, VFIO_BASE + 14);
/** Container (sPAPR only): enables the IOMMU. */
export const VFIO_IOMMU_ENABLE: number = _IO(VFIO_TYPE, VFIO_BASE + 15);
/** Container (sPAPR only): disables the IOMMU. */
export const VFIO_IOMMU_DISABLE: number = _IO(VFIO_TYPE, VFIO_BASE + 16);

// ---------------------------------------------------------------------------------------------------------------
// Capability chains
// ---------------------------------------------------------------------------------------------------------------

/** Header of every capability in an info struct's chain; `next` is the offset of the next one from the start
 * of the info struct, 0 at the end. */
export const VfioInfoCapHeader: StructDef<{ id: NumberField; version: NumberField; next: NumberField }> = defineStruct(
  "vfio_info_cap_header",
  8,
  {
    id: u16(0),
    version: u16(2),
    next: u32(4),
  },
);

// ---------------------------------------------------------------------------------------------------------------
// Group status
// ---------------------------------------------------------------------------------------------------------------

/** Group status flag: every device in the group is bound to vfio (or unbound), so the group is usable. */
export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
/** Group status flag: the group is attached to a container. */
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;

/** Argument of VFIO_GROUP_GET_STATUS. */
export const VfioGroupStatus: StructDef<{ argsz: NumberField; flags: NumberField }> = defineStruct(
  "vfio_group_status",
  8,
  {
    argsz: u32(0),
    flags: u32(4),
  },
);

// ---------------------------------------------------------------------------------------------------------------
// Device info
// ---------------------------------------------------------------------------------------------------------------

/** Device flag: VFIO_DEVICE_RESET is supported. */
export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
/** Device flag: a vfio-pci device. */
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;
/** Device flag: a vfio-platform device. */
export const VFIO_DEVICE_FLAGS_PLATFORM = 1 << 2;
/** Device flag: a vfio-amba device. */
export const VFIO_DEVICE_FLAGS_AMBA = 1 << 3;
/** Device flag: a vfio-ccw (s390 channel I/O) device. */
export const VFIO_DEVICE_FLAGS_CCW = 1 << 4;
/** Device flag: a vfio-ap (s390 crypto) device. */
export const VFIO_DEVICE_FLAGS_AP = 1 << 5;
/** Device flag: a vfio-fsl-mc device. */
export const VFIO_DEVICE_FLAGS_FSL_MC = 1 << 6;
/** Device flag: the info has a capability chain at cap_offset. */
export const VFIO_DEVICE_FLAGS_CAPS = 1 << 7;
/** Device flag: a vfio-cdx device. */
export const VFIO_DEVICE_FLAGS_CDX = 1 << 8;

/** Device info capability id: s390 zPCI base data. */
export const VFIO_DEVICE_INFO_CAP_ZPCI_BASE = 1;
/** Device info capability id: s390 zPCI function group data. */
export const VFIO_DEVICE_INFO_CAP_ZPCI_GROUP = 2;
/** Device info capability id: s390 zPCI utility string. */
export const VFIO_DEVICE_INFO_CAP_ZPCI_UTIL = 3;
/** Device info capability id: s390 zPCI function path. */
export const VFIO_DEVICE_INFO_CAP_ZPCI_PFIP = 4;
/** Device info capability id: PCIe AtomicOp completer support (vfio_device_info_cap_pci_atomic_comp). */
export const VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP = 5;
/** AtomicOp completer flag: 32-bit operations. */
export const VFIO_PCI_ATOMIC_COMP32 = 1 << 0;
/** AtomicOp completer flag: 64-bit operations. */
export const VFIO_PCI_ATOMIC_COMP64 = 1 << 1;
/** AtomicOp completer flag: 128-bit compare-and-swap. */
export const VFIO_PCI_ATOMIC_COMP128 = 1 << 2;

/** Argument of VFIO_DEVICE_GET_INFO; set argsz larger than size to receive the capability chain. */
export const VfioDeviceInfo: StructDef<
  {
    argsz: NumberField;
    flags: NumberField;
    num_regions: NumberField;
    num_irqs: NumberField;
    cap_offset: NumberField;
    pad: NumberField;
  }
> = defineStruct("vfio_device_info", 24, {
  argsz: u32(0),
  flags: u32(4),
  num_regions: u32(8),
  num_irqs: u32(12),
  cap_offset: u32(16),
  pad: u32(20),
});

/** Device info capability: which PCIe AtomicOp sizes the device can complete. */
export const VfioDeviceInfoCapPciAtomicComp: StructDef<
  { header: StructField<typeof VfioInfoCapHeader.layout>; flags: NumberField; reserved: NumberField }
> = defineStruct("vfio_device_info_cap_pci_atomic_comp", 16, {
  header: struct(VfioInfoCapHeader, 0),
  flags: u32(8),
  reserved: u32(12),
});

// ---------------------------------------------------------------------------------------------------------------
// Region info
// ---------------------------------------------------------------------------------------------------------------

/** Region flag: the region can be read through the device fd. */
export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
/** Region flag: the region can be written through the device fd. */
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
/** Region flag: the region (or the sparse areas listed in a capability) can be mmap'ed. */
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
/** Region flag: the info has a capability chain at cap_offset. */
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;

/** Region capability id: only the listed areas may be mmap'ed (vfio_region_info_cap_sparse_mmap). */
export const VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;
/** Region capability id: device-specific region type and subtype (vfio_region_info_cap_type). */
export const VFIO_REGION_INFO_CAP_TYPE = 2;
/** Region capability id: the MSI-X table inside this BAR may be mmap'ed too. */
export const VFIO_REGION_INFO_CAP_MSIX_MAPPABLE = 3;
/** Region capability id: NVLink2 target address (POWER). */
export const VFIO_REGION_INFO_CAP_NVLINK2_SSATGT = 4;
/** Region capability id: NVLink2 link speed (POWER). */
export const VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD = 5;

/** Region type bit: a PCI vendor-specific type; the low 16 bits are the vendor id. */
export const VFIO_REGION_TYPE_PCI_VENDOR_TYPE = 0x80000000;
/** Region type mask: the vendor id of a vendor-specific type. */
export const VFIO_REGION_TYPE_PCI_VENDOR_MASK = 0xffff;
/** Region type: graphics. */
export const VFIO_REGION_TYPE_GFX = 1;
/** Region type: s390 channel I/O. */
export const VFIO_REGION_TYPE_CCW = 2;
/** Region type: the removed v1 migration region. */
export const VFIO_REGION_TYPE_MIGRATION_DEPRECATED = 3;
/** Region subtype (Intel vendor type): IGD OpRegion. */
export const VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION = 1;
/** Region subtype (Intel vendor type): IGD host bridge config space. */
export const VFIO_REGION_SUBTYPE_INTEL_IGD_HOST_CFG = 2;
/** Region subtype (Intel vendor type): IGD LPC bridge config space. */
export const VFIO_REGION_SUBTYPE_INTEL_IGD_LPC_CFG = 3;
/** Region subtype (graphics type): EDID of a virtual display. */
export const VFIO_REGION_SUBTYPE_GFX_EDID = 1;

/** Argument of VFIO_DEVICE_GET_REGION_INFO; set argsz larger than size to receive the capability chain. */
export const VfioRegionInfo: StructDef<
  {
    argsz: NumberField;
    flags: NumberField;
    index: NumberField;
    cap_offset: NumberField;
    size: BigIntField;
    offset: BigIntField;
  }
> = defineStruct("vfio_region_info", 32, {
  argsz: u32(0),
  flags: u32(4),
  index: u32(8),
  cap_offset: u32(12),
  size: u64(16),
  offset: u64(24),
});

/** One mmap'able area of a region, relative to the region's start. */
export const VfioRegionSparseMmapArea: StructDef<{ offset: BigIntField; size: BigIntField }> = defineStruct(
  "vfio_region_sparse_mmap_area",
  16,
  {
    offset: u64(0),
    size: u64(8),
  },
);

/** Region capability: the header of the list of mmap'able areas; `areas` holds nr_areas area structs. */
export const VfioRegionInfoCapSparseMmap: StructDef<
  {
    header: StructField<typeof VfioInfoCapHeader.layout>;
    nr_areas: NumberField;
    reserved: NumberField;
    areas: TailField;
  }
> = defineStruct("vfio_region_info_cap_sparse_mmap", 16, {
  header: struct(VfioInfoCapHeader, 0),
  nr_areas: u32(8),
  reserved: u32(12),
  areas: tail(16, VfioRegionSparseMmapArea.size),
});

/** Region capability: the type and subtype of a device-specific region. */
export const VfioRegionInfoCapType: StructDef<
  { header: StructField<typeof VfioInfoCapHeader.layout>; type: NumberField; subtype: NumberField }
> = defineStruct("vfio_region_info_cap_type", 16, {
  header: struct(VfioInfoCapHeader, 0),
  type: u32(8),
  subtype: u32(12),
});

// ---------------------------------------------------------------------------------------------------------------
// IRQs
// ---------------------------------------------------------------------------------------------------------------

/** IRQ flag: the index can signal an eventfd. */
export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;
/** IRQ flag: the index can be masked and unmasked. */
export const VFIO_IRQ_INFO_MASKABLE = 1 << 1;
/** IRQ flag: the kernel masks the interrupt when it fires (level-triggered INTx); unmask after handling. */
export const VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
/** IRQ flag: the vector count cannot change without tearing down all vectors first. */
export const VFIO_IRQ_INFO_NORESIZE = 1 << 3;

/** IRQ set flag: no data follows; act on the range [start, start+count). */
export const VFIO_IRQ_SET_DATA_NONE = 1 << 0;
/** IRQ set flag: data is one u8 boolean per vector. */
export const VFIO_IRQ_SET_DATA_BOOL = 1 << 1;
/** IRQ set flag: data is one s32 eventfd per vector (-1 to tear one down). */
export const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
/** IRQ set flag: mask the vectors. */
export const VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
/** IRQ set flag: unmask the vectors. */
export const VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
/** IRQ set flag: trigger the vectors, or (with eventfds) set what triggering signals. */
export const VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;
/** All IRQ set data-type flags. */
export const VFIO_IRQ_SET_DATA_TYPE_MASK = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD;
/** All IRQ set action flags. */
export const VFIO_IRQ_SET_ACTION_TYPE_MASK = VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK |
  VFIO_IRQ_SET_ACTION_TRIGGER;

/** Argument of VFIO_DEVICE_GET_IRQ_INFO. */
export const VfioIrqInfo: StructDef<
  { argsz: NumberField; flags: NumberField; index: NumberField; count: NumberField }
> = defineStruct("vfio_irq_info", 16, {
  argsz: u32(0),
  flags: u32(4),
  index: u32(8),
  count: u32(12),
});

/** Argument of VFIO_DEVICE_SET_IRQS; `data` holds count bools or eventfds per the DATA flag (argsz covers it). */
export const VfioIrqSet: StructDef<
  {
    argsz: NumberField;
    flags: NumberField;
    index: NumberField;
    start: NumberField;
    count: NumberField;
    data: TailField;
  }
> = defineStruct("vfio_irq_set", 20, {
  argsz: u32(0),
  flags: u32(4),
  index: u32(8),
  start: u32(12),
  count: u32(16),
  data: tail(20, 1),
});

// ---------------------------------------------------------------------------------------------------------------
// vfio-pci region and IRQ indexes
// ---------------------------------------------------------------------------------------------------------------

/** vfio-pci region index of BAR 0. */
export const VFIO_PCI_BAR0_REGION_INDEX = 0;
/** vfio-pci region index of BAR 1. */
export const VFIO_PCI_BAR1_REGION_INDEX = 1;
/** vfio-pci region index of BAR 2. */
export const VFIO_PCI_BAR2_REGION_INDEX = 2;
/** vfio-pci region index of BAR 3. */
export const VFIO_PCI_BAR3_REGION_INDEX = 3;
/** vfio-pci region index of BAR 4. */
export const VFIO_PCI_BAR4_REGION_INDEX = 4;
/** vfio-pci region index of BAR 5. */
export const VFIO_PCI_BAR5_REGION_INDEX = 5;
/** vfio-pci region index of the expansion ROM. */
export const VFIO_PCI_ROM_REGION_INDEX = 6;
/** vfio-pci region index of PCI config space. */
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
/** vfio-pci region index of the legacy VGA ranges (VGA-class devices only). */
export const VFIO_PCI_VGA_REGION_INDEX = 8;
/** Number of fixed vfio-pci regions; higher indexes are device-specific and described by a type capability. */
export const VFIO_PCI_NUM_REGIONS = 9;

/** vfio-pci IRQ index of legacy INTx. */
export const VFIO_PCI_INTX_IRQ_INDEX = 0;
/** vfio-pci IRQ index of MSI. */
export const VFIO_PCI_MSI_IRQ_INDEX = 1;
/** vfio-pci IRQ index of MSI-X. */
export const VFIO_PCI_MSIX_IRQ_INDEX = 2;
/** vfio-pci IRQ index signalled on an AER error. */
export const VFIO_PCI_ERR_IRQ_INDEX = 3;
/** vfio-pci IRQ index signalled when the kernel requests the device back. */
export const VFIO_PCI_REQ_IRQ_INDEX = 4;
/** Number of vfio-pci IRQ indexes. */
export const VFIO_PCI_NUM_IRQS = 5;

// ---------------------------------------------------------------------------------------------------------------
// PCI hot reset
// ---------------------------------------------------------------------------------------------------------------

/** Hot reset info flag: entries carry iommufd device ids instead of group ids. */
export const VFIO_PCI_HOT_RESET_FLAG_DEV_ID = 1 << 0;
/** Hot reset info flag: the caller owns every affected device. */
export const VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED = 1 << 1;
/** Dependent-device devid meaning: owned by the caller but not bound to this iommufd. */
export const VFIO_PCI_DEVID_OWNED = 0;
/** Dependent-device devid meaning: not owned by the caller (C `-1`, read from the u32 field as 0xffffffff). */
export const VFIO_PCI_DEVID_NOT_OWNED = 0xffffffff;

/** One device a hot reset would affect: group id (or iommufd device id) and PCI address. */
export const VfioPciDependentDevice: StructDef<
  { group_id: NumberField; devid: NumberField; segment: NumberField; bus: NumberField; devfn: NumberField }
> = defineStruct("vfio_pci_dependent_device", 8, {
  group_id: u32(0),
  devid: u32(0),
  segment: u16(4),
  bus: u8(6),
  devfn: u8(7),
});

/** Argument of VFIO_DEVICE_GET_PCI_HOT_RESET_INFO; `devices` receives count dependent-device entries. */
export const VfioPciHotResetInfo: StructDef<
  { argsz: NumberField; flags: NumberField; count: NumberField; devices: TailField }
> = defineStruct("vfio_pci_hot_reset_info", 12, {
  argsz: u32(0),
  flags: u32(4),
  count: u32(8),
  devices: tail(12, VfioPciDependentDevice.size),
});

/** Argument of VFIO_DEVICE_PCI_HOT_RESET; `group_fds` holds count s32 group fds. */
export const VfioPciHotReset: StructDef<
  { argsz: NumberField; flags: NumberField; count: NumberField; group_fds: TailField }
> = defineStruct("vfio_pci_hot_reset", 12, {
  argsz: u32(0),
  flags: u32(4),
  count: u32(8),
  group_fds: tail(12, 4),
});

// ---------------------------------------------------------------------------------------------------------------
// ioeventfd
// ---------------------------------------------------------------------------------------------------------------

/** ioeventfd flag: 1-byte write. */
export const VFIO_DEVICE_IOEVENTFD_8 = 1 << 0;
/** ioeventfd flag: 2-byte write. */
export const VFIO_DEVICE_IOEVENTFD_16 = 1 << 1;
/** ioeventfd flag: 4-byte write. */
export const VFIO_DEVICE_IOEVENTFD_32 = 1 << 2;
/** ioeventfd flag: 8-byte write. */
export const VFIO_DEVICE_IOEVENTFD_64 = 1 << 3;
/** All ioeventfd write-size flags. */
export const VFIO_DEVICE_IOEVENTFD_SIZE_MASK = 0xf;

/** Argument of VFIO_DEVICE_IOEVENTFD: write `data` at device-fd `offset` whenever eventfd `fd` fires. */
export const VfioDeviceIoeventfd: StructDef<
  {
    argsz: NumberField;
    flags: NumberField;
    offset: BigIntField;
    data: BigIntField;
    fd: NumberField;
    reserved: NumberField;
  }
> = defineStruct("vfio_device_ioeventfd", 32, {
  argsz: u32(0),
  flags: u32(4),
  offset: u64(8),
  data: u64(16),
  fd: i32(24),
  reserved: u32(28),
});

// ---------------------------------------------------------------------------------------------------------------
// Device features
// ---------------------------------------------------------------------------------------------------------------

/** Device feature flags: the bits holding the feature index. */
export const VFIO_DEVICE_FEATURE_MASK = 0xffff;
/** Device feature flag: read the feature into data. */
export const VFIO_DEVICE_FEATURE_GET = 1 << 16;
/** Device feature flag: write the feature from data. */
export const VFIO_DEVICE_FEATURE_SET = 1 << 17;
/** Device feature flag: only ask whether the feature (with GET and/or SET) is supported. */
export const VFIO_DEVICE_FEATURE_PROBE = 1 << 18;
/** Feature index: set the SR-IOV VF token (a UUID). */
export const VFIO_DEVICE_FEATURE_PCI_VF_TOKEN = 0;
/** Feature index: live-migration support flags. */
export const VFIO_DEVICE_FEATURE_MIGRATION = 1;
/** Feature index: migration device state. */
export const VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE = 2;
/** Feature index: enter low-power state. */
export const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY = 3;
/** Feature index: enter low-power state, signalling an eventfd on wake-up. */
export const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP = 4;
/** Feature index: leave low-power state. */
export const VFIO_DEVICE_FEATURE_LOW_POWER_EXIT = 5;
/** Feature index: start device DMA dirty logging. */
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_START = 6;
/** Feature index: stop device DMA dirty logging. */
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP = 7;
/** Feature index: report device DMA dirty pages. */
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT = 8;
/** Feature index: estimated migration data size. */
export const VFIO_DEVICE_FEATURE_MIG_DATA_SIZE = 9;
/** Feature index: set or clear PCI bus mastering (vfio_device_feature_bus_master). */
export const VFIO_DEVICE_FEATURE_BUS_MASTER = 10;
/** Bus master feature op: clear bus mastering. */
export const VFIO_DEVICE_FEATURE_CLEAR_MASTER = 0;
/** Bus master feature op: set bus mastering. */
export const VFIO_DEVICE_FEATURE_SET_MASTER = 1;

/** Argument of VFIO_DEVICE_FEATURE; the feature's own struct follows in `data`. */
export const VfioDeviceFeature: StructDef<{ argsz: NumberField; flags: NumberField; data: TailField }> = defineStruct(
  "vfio_device_feature",
  8,
  {
    argsz: u32(0),
    flags: u32(4),
    data: tail(8, 1),
  },
);

/** Data of the bus-master feature: the op to perform. */
export const VfioDeviceFeatureBusMaster: StructDef<{ op: NumberField }> = defineStruct(
  "vfio_device_feature_bus_master",
  4,
  {
    op: u32(0),
  },
);

// ---------------------------------------------------------------------------------------------------------------
// iommufd binding of device cdevs (/dev/vfio/devices/vfioN)
// ---------------------------------------------------------------------------------------------------------------

/** Argument of VFIO_DEVICE_BIND_IOMMUFD: the iommufd in, the device id within it out. */
export const VfioDeviceBindIommufd: StructDef<
  { argsz: NumberField; flags: NumberField; iommufd: NumberField; out_devid: NumberField }
> = defineStruct("vfio_device_bind_iommufd", 16, {
  argsz: u32(0),
  flags: u32(4),
  iommufd: i32(8),
  out_devid: u32(12),
});

/** Argument of VFIO_DEVICE_ATTACH_IOMMUFD_PT: the IOAS or page-table id to attach to (the attached id out). */
export const VfioDeviceAttachIommufdPt: StructDef<{ argsz: NumberField; flags: NumberField; pt_id: NumberField }> =
  defineStruct("vfio_device_attach_iommufd_pt", 12, {
    argsz: u32(0),
    flags: u32(4),
    pt_id: u32(8),
  });

/** Argument of VFIO_DEVICE_DETACH_IOMMUFD_PT. */
export const VfioDeviceDetachIommufdPt: StructDef<{ argsz: NumberField; flags: NumberField }> = defineStruct(
  "vfio_device_detach_iommufd_pt",
  8,
  {
    argsz: u32(0),
    flags: u32(4),
  },
);

// ---------------------------------------------------------------------------------------------------------------
// Type1 IOMMU (container) info and DMA mapping
// ---------------------------------------------------------------------------------------------------------------

/** IOMMU info flag: iova_pgsizes is valid. */
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
/** IOMMU info flag: the info has a capability chain at cap_offset. */
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;
/** IOMMU info capability id: the usable IOVA ranges (vfio_iommu_type1_info_cap_iova_range). */
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
/** IOMMU info capability id: dirty-page tracking support (vfio_iommu_type1_info_cap_migration). */
export const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;
/** IOMMU info capability id: how many more DMA mappings are allowed (vfio_iommu_type1_info_dma_avail). */
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

/** DMA map flag: the device may read the memory. */
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
/** DMA map flag: the device may write the memory. */
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
/** DMA map flag: only update the process address of an existing mapping. */
export const VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;
/** DMA unmap flag: also return the dirty bitmap of the range. */
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
/** DMA unmap flag: unmap everything (iova and size must be 0). */
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
/** DMA unmap flag: only invalidate the process address (to be restored with VFIO_DMA_MAP_FLAG_VADDR). */
export const VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;

/** Argument of VFIO_IOMMU_GET_INFO; set argsz larger than size to receive the capability chain. */
export const VfioIommuType1Info: StructDef<
  { argsz: NumberField; flags: NumberField; iova_pgsizes: BigIntField; cap_offset: NumberField; pad: NumberField }
> = defineStruct("vfio_iommu_type1_info", 24, {
  argsz: u32(0),
  flags: u32(4),
  iova_pgsizes: u64(8),
  cap_offset: u32(16),
  pad: u32(20),
});

/** One usable IOVA range, both ends inclusive. */
export const VfioIovaRange: StructDef<{ start: BigIntField; end: BigIntField }> = defineStruct("vfio_iova_range", 16, {
  start: u64(0),
  end: u64(8),
});

/** IOMMU info capability: header of the usable IOVA ranges; `iova_ranges` holds nr_iovas range structs. */
export const VfioIommuType1InfoCapIovaRange: StructDef<
  {
    header: StructField<typeof VfioInfoCapHeader.layout>;
    nr_iovas: NumberField;
    reserved: NumberField;
    iova_ranges: TailField;
  }
> = defineStruct("vfio_iommu_type1_info_cap_iova_range", 16, {
  header: struct(VfioInfoCapHeader, 0),
  nr_iovas: u32(8),
  reserved: u32(12),
  iova_ranges: tail(16, VfioIovaRange.size),
});

/** IOMMU info capability: dirty-page tracking page sizes and maximum bitmap size. */
export const VfioIommuType1InfoCapMigration: StructDef<
  {
    header: StructField<typeof VfioInfoCapHeader.layout>;
    flags: NumberField;
    pgsize_bitmap: BigIntField;
    max_dirty_bitmap_size: BigIntField;
  }
> = defineStruct("vfio_iommu_type1_info_cap_migration", 32, {
  header: struct(VfioInfoCapHeader, 0),
  flags: u32(8),
  pgsize_bitmap: u64(16),
  max_dirty_bitmap_size: u64(24),
});

/** IOMMU info capability: the number of DMA mappings still allowed. */
export const VfioIommuType1InfoDmaAvail: StructDef<
  { header: StructField<typeof VfioInfoCapHeader.layout>; avail: NumberField }
> = defineStruct("vfio_iommu_type1_info_dma_avail", 12, {
  header: struct(VfioInfoCapHeader, 0),
  avail: u32(8),
});

/** Argument of VFIO_IOMMU_MAP_DMA: map size bytes at process address vaddr to device address iova. */
export const VfioIommuType1DmaMap: StructDef<
  { argsz: NumberField; flags: NumberField; vaddr: BigIntField; iova: BigIntField; size: BigIntField }
> = defineStruct("vfio_iommu_type1_dma_map", 32, {
  argsz: u32(0),
  flags: u32(4),
  vaddr: u64(8),
  iova: u64(16),
  size: u64(24),
});

/** Argument of VFIO_IOMMU_UNMAP_DMA: unmap size bytes at iova (size is updated to what was unmapped). */
export const VfioIommuType1DmaUnmap: StructDef<
  { argsz: NumberField; flags: NumberField; iova: BigIntField; size: BigIntField; data: TailField }
> = defineStruct("vfio_iommu_type1_dma_unmap", 24, {
  argsz: u32(0),
  flags: u32(4),
  iova: u64(8),
  size: u64(16),
  data: tail(24, 1),
});
