/**
 * A `Region` over a memfd for host unit tests: the kernel's real mmap path (as on a VFIO device fd), with a memfd
 * standing in for the device, so polling and descriptor code can be tested on shared memory without a device.
 *
 * ```ts
 * import { memfdRegion } from "./memfd_region.ts";
 * using m = memfdRegion(0x4000);
 * m.region.write32(0, 1);
 * ```
 * @module
 */
import { MFD_CLOEXEC } from "../../ffi/constants.ts";
import { libc } from "../../ffi/libc.ts";
import {
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
} from "../../lib/abi/vfio.ts";
import { Region, regionName } from "../../lib/region.ts";
import type { DeviceFd } from "../../lib/types.ts";

/** A memfd of `size` bytes and region 0 mapped over it; disposing closes both. */
export interface MemfdRegion {
  /** The memfd (a `DeviceFd` stand-in). */
  readonly fd: number;
  /** Region 0, mmapped. */
  readonly region: Region;
  /** Closes the region and the memfd. */
  [Symbol.dispose](): void;
}

/** Opens region 0 of `size` bytes, mmapped, over `dev` (whose fd is a memfd at least that long). */
export function openMemfdRegion(dev: DeviceFd, size: number): Region {
  const flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;
  return Region.open(dev, 0, {
    mmap: "required",
    info: {
      index: 0,
      name: regionName(0),
      size,
      offset: 0,
      flags,
      readable: true,
      writable: true,
      mmappable: true,
      sparseAreas: null,
      type: null,
      msixMappable: false,
      capabilityIds: [],
    },
  });
}

/** A fresh memfd of `size` bytes with region 0 mapped over it. */
export function memfdRegion(size: number): MemfdRegion {
  const fd = libc.memfdCreate("vfio-ts-unit-memfd", MFD_CLOEXEC);
  libc.ftruncate(fd, size);
  const region = openMemfdRegion({ fd, name: "memfd" }, size);
  return {
    fd,
    region,
    [Symbol.dispose]: () => {
      region.close();
      libc.close(fd);
    },
  };
}
