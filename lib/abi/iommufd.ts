/**
 * The iommufd user-space ABI from the Linux 6.12 uapi header `linux/iommufd.h`: ioctl numbers, flags and
 * argument structs for `/dev/iommu`, the I/O address space (IOAS) API that VFIO device cdevs attach to.
 *
 * Like VFIO, iommufd encodes its ioctls with `_IO` and reads the argument size from the struct's leading
 * `size` field, which callers set to the struct's size. Every value here is checked against the real header by
 * `tests/unit/abi.test.ts`.
 *
 * ```ts
 * import { IOMMU_IOAS_ALLOC, IommuIoasAlloc } from "@vfio-ts/vfio/abi";
 * const alloc = IommuIoasAlloc.alloc();
 * alloc.size = IommuIoasAlloc.size;
 * // ioctl(iommufd, IOMMU_IOAS_ALLOC, alloc.bytes); then alloc.out_ioas_id names the new address space
 * ```
 * @module
 */

import { _IO } from "./ioctl.ts";
import {
  type BigIntField,
  bytes,
  type BytesField,
  defineStruct,
  type NumberField,
  type StructDef,
  u16,
  u32,
  u64,
  u8,
} from "./struct.ts";

// ---------------------------------------------------------------------------------------------------------------
// ioctl numbers
// ---------------------------------------------------------------------------------------------------------------

/** The ioctl type byte of iommufd, the character `;` (shared with VFIO; the command numbers differ). */
export const IOMMUFD_TYPE = 0x3b;
/** First iommufd command number. */
export const IOMMUFD_CMD_BASE = 0x80;
/** Command number of IOMMU_DESTROY. */
export const IOMMUFD_CMD_DESTROY: number = IOMMUFD_CMD_BASE;
/** Command number of IOMMU_IOAS_ALLOC. */
export const IOMMUFD_CMD_IOAS_ALLOC = 0x81;
/** Command number of IOMMU_IOAS_ALLOW_IOVAS. */
export const IOMMUFD_CMD_IOAS_ALLOW_IOVAS = 0x82;
/** Command number of IOMMU_IOAS_COPY. */
export const IOMMUFD_CMD_IOAS_COPY = 0x83;
/** Command number of IOMMU_IOAS_IOVA_RANGES. */
export const IOMMUFD_CMD_IOAS_IOVA_RANGES = 0x84;
/** Command number of IOMMU_IOAS_MAP. */
export const IOMMUFD_CMD_IOAS_MAP = 0x85;
/** Command number of IOMMU_IOAS_UNMAP. */
export const IOMMUFD_CMD_IOAS_UNMAP = 0x86;
/** Command number of IOMMU_OPTION. */
export const IOMMUFD_CMD_OPTION = 0x87;
/** Command number of IOMMU_VFIO_IOAS. */
export const IOMMUFD_CMD_VFIO_IOAS = 0x88;
/** Command number of IOMMU_HWPT_ALLOC. */
export const IOMMUFD_CMD_HWPT_ALLOC = 0x89;
/** Command number of IOMMU_GET_HW_INFO. */
export const IOMMUFD_CMD_GET_HW_INFO = 0x8a;

/** Destroys any iommufd object (IOAS, page table, device binding) by id (iommu_destroy). */
export const IOMMU_DESTROY: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY);
/** Allocates a new, empty I/O address space and returns its id (iommu_ioas_alloc). */
export const IOMMU_IOAS_ALLOC: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC);
/** Lists the IOVA ranges an IOAS can map and the required IOVA alignment (iommu_ioas_iova_ranges). */
export const IOMMU_IOAS_IOVA_RANGES: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES);
/** Restricts the IOVA ranges the kernel may pick for automatic placement (iommu_ioas_allow_iovas). */
export const IOMMU_IOAS_ALLOW_IOVAS: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOW_IOVAS);
/** Maps process memory into an IOAS at a fixed or kernel-chosen IOVA (iommu_ioas_map). */
export const IOMMU_IOAS_MAP: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP);
/** Maps the pages behind a range of one IOAS into another IOAS (iommu_ioas_copy). */
export const IOMMU_IOAS_COPY: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_COPY);
/** Unmaps an IOVA range from an IOAS; the unmapped length is written back (iommu_ioas_unmap). */
export const IOMMU_IOAS_UNMAP: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP);
/** Gets or sets an iommufd-wide or per-object option (iommu_option). */
export const IOMMU_OPTION: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_OPTION);
/** Gets, sets or clears the IOAS used by the VFIO container compatibility layer (iommu_vfio_ioas). */
export const IOMMU_VFIO_IOAS: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_VFIO_IOAS);
/** Allocates a hardware page table for a device (iommu_hwpt_alloc). */
export const IOMMU_HWPT_ALLOC: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_ALLOC);
/** Reports the IOMMU hardware behind a bound device (iommu_hw_info). */
export const IOMMU_GET_HW_INFO: number = _IO(IOMMUFD_TYPE, IOMMUFD_CMD_GET_HW_INFO);

// ---------------------------------------------------------------------------------------------------------------
// Flags and enums
// ---------------------------------------------------------------------------------------------------------------

/** Map/copy flag: use the given iova exactly instead of letting the kernel choose. */
export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
/** Map/copy flag: the device may write the memory. */
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
/** Map/copy flag: the device may read the memory. */
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;

/** Option id: how pinned pages are charged against RLIMIT_MEMLOCK (0 per user, 1 per process). */
export const IOMMU_OPTION_RLIMIT_MODE = 0;
/** Option id (per IOAS): allow huge-page IOMMU mappings (1, default) or force 4K pages (0). */
export const IOMMU_OPTION_HUGE_PAGES = 1;
/** Option op: set the option to val64. */
export const IOMMU_OPTION_OP_SET = 0;
/** Option op: read the option into val64. */
export const IOMMU_OPTION_OP_GET = 1;

/** VFIO compat op: return the IOAS id the compat container uses. */
export const IOMMU_VFIO_IOAS_GET = 0;
/** VFIO compat op: make the given IOAS the compat container's. */
export const IOMMU_VFIO_IOAS_SET = 1;
/** VFIO compat op: stop using any IOAS for the compat container. */
export const IOMMU_VFIO_IOAS_CLEAR = 2;

/** HWPT alloc flag: the page table will be a parent of nested (stage-1) tables. */
export const IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0;
/** HWPT alloc flag: enable dirty tracking support. */
export const IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1;
/** HWPT alloc flag: fault_id names a fault queue. */
export const IOMMU_HWPT_FAULT_ID_VALID = 1 << 2;
/** HWPT data type: none (a kernel-managed page table). */
export const IOMMU_HWPT_DATA_NONE = 0;
/** HWPT data type: an Intel VT-d stage-1 page table. */
export const IOMMU_HWPT_DATA_VTD_S1 = 1;

/** Hardware info type: no driver-specific data. */
export const IOMMU_HW_INFO_TYPE_NONE = 0;
/** Hardware info type: Intel VT-d (iommu_hw_info_vtd). */
export const IOMMU_HW_INFO_TYPE_INTEL_VTD = 1;
/** Hardware capability: dirty tracking. */
export const IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0;
/** Hardware capability: PASID execute permission. */
export const IOMMU_HW_CAP_PCI_PASID_EXEC = 1 << 1;
/** Hardware capability: PASID privileged mode. */
export const IOMMU_HW_CAP_PCI_PASID_PRIV = 1 << 2;

// ---------------------------------------------------------------------------------------------------------------
// Structs
// ---------------------------------------------------------------------------------------------------------------

/** Argument of IOMMU_DESTROY. */
export const IommuDestroy: StructDef<{ size: NumberField; id: NumberField }> = defineStruct("iommu_destroy", 8, {
  size: u32(0),
  id: u32(4),
});

/** Argument of IOMMU_IOAS_ALLOC: the new IOAS id comes back in out_ioas_id. */
export const IommuIoasAlloc: StructDef<{ size: NumberField; flags: NumberField; out_ioas_id: NumberField }> =
  defineStruct("iommu_ioas_alloc", 12, {
    size: u32(0),
    flags: u32(4),
    out_ioas_id: u32(8),
  });

/** One IOVA range, both ends inclusive. */
export const IommuIovaRange: StructDef<{ start: BigIntField; last: BigIntField }> = defineStruct(
  "iommu_iova_range",
  16,
  {
    start: u64(0),
    last: u64(8),
  },
);

/** Argument of IOMMU_IOAS_IOVA_RANGES: allowed_iovas points to num_iovas iommu_iova_range entries. */
export const IommuIoasIovaRanges: StructDef<
  {
    size: NumberField;
    ioas_id: NumberField;
    num_iovas: NumberField;
    __reserved: NumberField;
    allowed_iovas: BigIntField;
    out_iova_alignment: BigIntField;
  }
> = defineStruct("iommu_ioas_iova_ranges", 32, {
  size: u32(0),
  ioas_id: u32(4),
  num_iovas: u32(8),
  __reserved: u32(12),
  allowed_iovas: u64(16),
  out_iova_alignment: u64(24),
});

/** Argument of IOMMU_IOAS_ALLOW_IOVAS: allowed_iovas points to num_iovas iommu_iova_range entries. */
export const IommuIoasAllowIovas: StructDef<
  {
    size: NumberField;
    ioas_id: NumberField;
    num_iovas: NumberField;
    __reserved: NumberField;
    allowed_iovas: BigIntField;
  }
> = defineStruct("iommu_ioas_allow_iovas", 24, {
  size: u32(0),
  ioas_id: u32(4),
  num_iovas: u32(8),
  __reserved: u32(12),
  allowed_iovas: u64(16),
});

/** Argument of IOMMU_IOAS_MAP: map length bytes at user_va; iova in (if FIXED_IOVA) or out. */
export const IommuIoasMap: StructDef<
  {
    size: NumberField;
    flags: NumberField;
    ioas_id: NumberField;
    __reserved: NumberField;
    user_va: BigIntField;
    length: BigIntField;
    iova: BigIntField;
  }
> = defineStruct("iommu_ioas_map", 40, {
  size: u32(0),
  flags: u32(4),
  ioas_id: u32(8),
  __reserved: u32(12),
  user_va: u64(16),
  length: u64(24),
  iova: u64(32),
});

/** Argument of IOMMU_IOAS_COPY: map the pages at src_iova in src_ioas_id into dst_ioas_id. */
export const IommuIoasCopy: StructDef<
  {
    size: NumberField;
    flags: NumberField;
    dst_ioas_id: NumberField;
    src_ioas_id: NumberField;
    length: BigIntField;
    dst_iova: BigIntField;
    src_iova: BigIntField;
  }
> = defineStruct("iommu_ioas_copy", 40, {
  size: u32(0),
  flags: u32(4),
  dst_ioas_id: u32(8),
  src_ioas_id: u32(12),
  length: u64(16),
  dst_iova: u64(24),
  src_iova: u64(32),
});

/** Argument of IOMMU_IOAS_UNMAP: unmap length bytes at iova (iova 0, length ~0 unmaps all). */
export const IommuIoasUnmap: StructDef<
  { size: NumberField; ioas_id: NumberField; iova: BigIntField; length: BigIntField }
> = defineStruct("iommu_ioas_unmap", 24, {
  size: u32(0),
  ioas_id: u32(4),
  iova: u64(8),
  length: u64(16),
});

/** Argument of IOMMU_OPTION. */
export const IommuOption: StructDef<
  {
    size: NumberField;
    option_id: NumberField;
    op: NumberField;
    __reserved: NumberField;
    object_id: NumberField;
    val64: BigIntField;
  }
> = defineStruct("iommu_option", 24, {
  size: u32(0),
  option_id: u32(4),
  op: u16(8),
  __reserved: u16(10),
  object_id: u32(12),
  val64: u64(16),
});

/** Argument of IOMMU_VFIO_IOAS. */
export const IommuVfioIoas: StructDef<
  { size: NumberField; ioas_id: NumberField; op: NumberField; __reserved: NumberField }
> = defineStruct("iommu_vfio_ioas", 12, {
  size: u32(0),
  ioas_id: u32(4),
  op: u16(8),
  __reserved: u16(10),
});

/** Argument of IOMMU_HWPT_ALLOC: the new page table id comes back in out_hwpt_id. */
export const IommuHwptAlloc: StructDef<
  {
    size: NumberField;
    flags: NumberField;
    dev_id: NumberField;
    pt_id: NumberField;
    out_hwpt_id: NumberField;
    __reserved: NumberField;
    data_type: NumberField;
    data_len: NumberField;
    data_uptr: BigIntField;
    fault_id: NumberField;
    __reserved2: NumberField;
  }
> = defineStruct("iommu_hwpt_alloc", 48, {
  size: u32(0),
  flags: u32(4),
  dev_id: u32(8),
  pt_id: u32(12),
  out_hwpt_id: u32(16),
  __reserved: u32(20),
  data_type: u32(24),
  data_len: u32(28),
  data_uptr: u64(32),
  fault_id: u32(40),
  __reserved2: u32(44),
});

/** Argument of IOMMU_GET_HW_INFO: driver data is written to data_uptr (data_len bytes). */
export const IommuHwInfo: StructDef<
  {
    size: NumberField;
    flags: NumberField;
    dev_id: NumberField;
    data_len: NumberField;
    data_uptr: BigIntField;
    out_data_type: NumberField;
    out_max_pasid_log2: NumberField;
    __reserved: BytesField;
    out_capabilities: BigIntField;
  }
> = defineStruct("iommu_hw_info", 40, {
  size: u32(0),
  flags: u32(4),
  dev_id: u32(8),
  data_len: u32(12),
  data_uptr: u64(16),
  out_data_type: u32(24),
  out_max_pasid_log2: u8(28),
  __reserved: bytes(29, 3),
  out_capabilities: u64(32),
});

/** Intel VT-d hardware info returned by IOMMU_GET_HW_INFO (capability and extended capability registers). */
export const IommuHwInfoVtd: StructDef<
  { flags: NumberField; __reserved: NumberField; cap_reg: BigIntField; ecap_reg: BigIntField }
> = defineStruct("iommu_hw_info_vtd", 24, {
  flags: u32(0),
  __reserved: u32(4),
  cap_reg: u64(8),
  ecap_reg: u64(16),
});
