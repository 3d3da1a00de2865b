/**
 * What the kernel says about one region of a VFIO device (`VFIO_DEVICE_GET_REGION_INFO`): its size, where it
 * lives in the device fd, what may be done with it, and its capability chain (sparse mmap areas, a
 * device-specific type, whether the MSI-X table may be mmapped).
 *
 * ```ts
 * import { regionInfo } from "@vfio-ts/vfio";
 * import type { DeviceFd } from "@vfio-ts/vfio";
 * declare const dev: DeviceFd;
 * const bar0 = regionInfo(dev, 0);
 * console.log(bar0.name, bar0.size, bar0.mmappable, bar0.sparseAreas);
 * ```
 * @module
 */

import { libc } from "../ffi/libc.ts";
import {
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_BAR5_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP,
  VFIO_REGION_INFO_CAP_TYPE,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  VfioRegionInfo,
  VfioRegionInfoCapSparseMmap,
  VfioRegionInfoCapType,
  VfioRegionSparseMmapArea,
} from "./abi/vfio.ts";
import { VfioError } from "./errors.ts";
import { capabilityChain, checkSpan, growingReply } from "./kernel_reply.ts";
import type { DeviceFd } from "./types.ts";

/** One mmappable window of a region, in bytes from the region's start. */
export interface SparseMmapArea {
  /** Start of the area within the region. */
  readonly offset: number;
  /** Length of the area. */
  readonly size: number;
}

/** A device-specific region's type and subtype (`VFIO_REGION_INFO_CAP_TYPE`). */
export interface RegionType {
  /** `VFIO_REGION_TYPE_*`, or `VFIO_REGION_TYPE_PCI_VENDOR_TYPE | vendor id`. */
  readonly type: number;
  /** `VFIO_REGION_SUBTYPE_*`. */
  readonly subtype: number;
}

/** The decoded answer of `VFIO_DEVICE_GET_REGION_INFO` for one region. */
export interface RegionInfo {
  /** The region index (`VFIO_PCI_BAR0_REGION_INDEX` … `VFIO_PCI_VGA_REGION_INDEX`, or a device-specific one). */
  readonly index: number;
  /** `"BAR0"` … `"BAR5"`, `"ROM"`, `"config"`, `"VGA"`, or `"region N"`. */
  readonly name: string;
  /** Size in bytes; 0 when the device does not implement the region (e.g. an unused BAR). */
  readonly size: number;
  /** File offset of the region within the device fd (for pread/pwrite/mmap). */
  readonly offset: number;
  /** The raw `VFIO_REGION_INFO_FLAG_*` bits. */
  readonly flags: number;
  /** `VFIO_REGION_INFO_FLAG_READ`. */
  readonly readable: boolean;
  /** `VFIO_REGION_INFO_FLAG_WRITE`. */
  readonly writable: boolean;
  /** `VFIO_REGION_INFO_FLAG_MMAP`: the region (or its sparse areas) may be mmapped. */
  readonly mmappable: boolean;
  /** The areas that may be mmapped when the region has a sparse-mmap capability, else `null` (the whole region). */
  readonly sparseAreas: readonly SparseMmapArea[] | null;
  /** The region's type capability, if any (device-specific regions beyond the fixed PCI ones). */
  readonly type: RegionType | null;
  /** `VFIO_REGION_INFO_CAP_MSIX_MAPPABLE`: the MSI-X table inside this BAR may be mmapped too. */
  readonly msixMappable: boolean;
  /** The ids of every capability in the chain, in order (including ones this library does not decode). */
  readonly capabilityIds: readonly number[];
}

/**
 * The name of a vfio-pci region index: `"BAR0"` … `"BAR5"`, `"ROM"`, `"config"`, `"VGA"`, else `"region N"`.
 *
 * ```ts
 * import { regionName } from "@vfio-ts/vfio";
 * regionName(7); // "config"
 * ```
 */
export function regionName(index: number): string {
  if (index >= VFIO_PCI_BAR0_REGION_INDEX && index <= VFIO_PCI_BAR5_REGION_INDEX) return `BAR${index}`;
  if (index === VFIO_PCI_ROM_REGION_INDEX) return "ROM";
  if (index === VFIO_PCI_CONFIG_REGION_INDEX) return "config";
  if (index === VFIO_PCI_VGA_REGION_INDEX) return "VGA";
  return `region ${index}`;
}

/**
 * Asks the kernel about region `index` of a device, capability chain included. When the chain does not fit the
 * first buffer the kernel reports the size it needs in `argsz` and the call is repeated with a buffer that big.
 * Throws a `SystemError` (EINVAL) for an index the device does not have, and a `VfioError` for a malformed chain.
 *
 * ```ts
 * import { regionInfo } from "@vfio-ts/vfio";
 * import type { DeviceFd } from "@vfio-ts/vfio";
 * declare const dev: DeviceFd;
 * const { size, offset, mmappable } = regionInfo(dev, 0);
 * ```
 */
export function regionInfo(dev: DeviceFd, index: number): RegionInfo {
  if (!Number.isInteger(index) || index < 0 || index > 0xffffffff) {
    throw new VfioError(`region index ${index} is not a valid index`, {
      remedy: "use 0-5 for BARs, 6 for the ROM, 7 for config space, 8 for VGA",
    });
  }
  const target = `VFIO_DEVICE_GET_REGION_INFO ${regionName(index)} of ${dev.name}`;
  const info = growingReply(target, VfioRegionInfo, (v) => {
    v.index = index;
    libc.ioctl(dev.fd, VFIO_DEVICE_GET_REGION_INFO, v.bytes, { target, kind: "vfio-device-ioctl" });
  });
  return decodeRegionInfo(index, info.bytes, target);
}

/**
 * Decodes a filled `vfio_region_info` (with its capability chain) as {@linkcode regionInfo} returns it. Throws a
 * `MalformedReplyError` for a chain or count that leaves the buffer.
 *
 * ```ts
 * import { VfioRegionInfo } from "@vfio-ts/vfio/abi";
 * import { decodeRegionInfo } from "./region_info.ts";
 * const raw = VfioRegionInfo.alloc();
 * raw.size = 4096n;
 * decodeRegionInfo(0, raw.bytes).size; // 4096
 * ```
 */
export function decodeRegionInfo(index: number, bytes: Uint8Array, target = "VFIO_DEVICE_GET_REGION_INFO"): RegionInfo {
  const info = VfioRegionInfo.view(bytes);
  const flags = info.flags;
  let sparseAreas: SparseMmapArea[] | null = null;
  let type: RegionType | null = null;
  let msixMappable = false;
  const capabilityIds: number[] = [];
  if ((flags & VFIO_REGION_INFO_FLAG_CAPS) !== 0 && info.cap_offset !== 0) {
    for (const { id, offset: at } of capabilityChain(target, bytes, info.cap_offset, VfioRegionInfo.size)) {
      capabilityIds.push(id);
      if (id === VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
        checkSpan(target, bytes, at, 1, VfioRegionInfoCapSparseMmap.size, "sparse mmap capability");
        const cap = VfioRegionInfoCapSparseMmap.view(bytes, at);
        const n = cap.nr_areas;
        const first = at + VfioRegionInfoCapSparseMmap.size;
        checkSpan(target, bytes, first, n, VfioRegionSparseMmapArea.size, "sparse mmap areas");
        sparseAreas = [];
        for (let i = 0; i < n; i++) {
          const area = VfioRegionSparseMmapArea.view(bytes, first + i * VfioRegionSparseMmapArea.size);
          sparseAreas.push({ offset: Number(area.offset), size: Number(area.size) });
        }
      } else if (id === VFIO_REGION_INFO_CAP_TYPE) {
        checkSpan(target, bytes, at, 1, VfioRegionInfoCapType.size, "region type capability");
        const cap = VfioRegionInfoCapType.view(bytes, at);
        type = { type: cap.type, subtype: cap.subtype };
      } else if (id === VFIO_REGION_INFO_CAP_MSIX_MAPPABLE) {
        msixMappable = true;
      }
    }
  }
  return {
    index,
    name: regionName(index),
    size: Number(info.size),
    offset: Number(info.offset),
    flags,
    readable: (flags & VFIO_REGION_INFO_FLAG_READ) !== 0,
    writable: (flags & VFIO_REGION_INFO_FLAG_WRITE) !== 0,
    mmappable: (flags & VFIO_REGION_INFO_FLAG_MMAP) !== 0,
    sparseAreas,
    type,
    msixMappable,
    capabilityIds,
  };
}
