/**
 * Physical addresses of this process's pages, from `/proc/self/pagemap` (one 64-bit entry per base page:
 * bit 63 "present", bit 62 "swapped", bits 0–54 the page frame number). Needed in no-IOMMU mode, where a device
 * must be given physical addresses.
 *
 * The kernel only reveals frame numbers to CAP_SYS_ADMIN: other processes read them as 0, which this module
 * reports as an error rather than handing a device address 0.
 *
 * ```ts
 * import { translatePages } from "@vfio-ts/vfio";
 * import { DmaMemory } from "@vfio-ts/vfio";
 * using mem = DmaMemory.alloc(8192, { hugepages: "never" });
 * const phys = translatePages(mem.vaddr, mem.size); // one physical address per base page
 * console.log(phys[0].toString(16));
 * ```
 * @module
 */
import { O_CLOEXEC, O_RDONLY } from "../../ffi/constants.ts";
import { libc } from "../../ffi/libc.ts";
import { OutOfRangeError, VfioError } from "../errors.ts";
import { hex } from "../hex.ts";

const PAGEMAP_PATH = "/proc/self/pagemap";
// Bit layout from the kernel's Documentation/admin-guide/mm/pagemap.rst (not in a uapi header).
const PAGEMAP_PRESENT = 1n << 63n;
const PAGEMAP_SWAPPED = 1n << 62n;
const PAGEMAP_PFN_MASK = (1n << 55n) - 1n;
const PAGEMAP_ENTRY_BYTES = 8;

function checkRange(vaddr: bigint, sizeBytes: number, pageSize: number): void {
  if (vaddr <= 0n || vaddr % BigInt(pageSize) !== 0n) {
    throw new OutOfRangeError(`pagemap: address ${hex(vaddr)} is not page-aligned (${pageSize} bytes)`);
  }
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % pageSize !== 0) {
    throw new OutOfRangeError(`pagemap: size ${sizeBytes} is not a positive multiple of the page size ${pageSize}`);
  }
}

function noPfnError(vaddr: bigint): VfioError {
  return new VfioError(
    `${PAGEMAP_PATH} reports page frame number 0 for ${hex(vaddr)}: physical addresses are hidden ` +
      "from processes without CAP_SYS_ADMIN",
    {
      remedy: "no-IOMMU DMA needs physical addresses: run as root, or grant the runtime binary cap_sys_admin " +
        "(setcap cap_sys_admin,cap_ipc_lock,cap_sys_rawio+ep <deno|bun>), or use an IOMMU (type1/iommufd)",
    },
  );
}

function decode(entry: bigint, vaddr: bigint, pageSize: number): bigint {
  if ((entry & PAGEMAP_PRESENT) === 0n) {
    const why = (entry & PAGEMAP_SWAPPED) !== 0n ? "swapped out" : "not present";
    throw new VfioError(`page at ${hex(vaddr)} is ${why}, so it has no physical address`, {
      remedy: "translate only memory that is populated and locked (DmaMemory.alloc does both)",
    });
  }
  const pfn = entry & PAGEMAP_PFN_MASK;
  if (pfn === 0n) throw noPfnError(vaddr);
  return pfn * BigInt(pageSize);
}

function openPagemap(): number {
  return libc.open(PAGEMAP_PATH, O_RDONLY | O_CLOEXEC);
}

/**
 * Physical addresses of every base page of `[vaddr, vaddr + sizeBytes)`, read with **one** `pread` of all the
 * range's pagemap entries. The memory must be page-aligned, populated and locked.
 *
 * Pinning caveat: the answer is a snapshot. `mlock` does not stop page migration (compaction, NUMA balancing);
 * hugetlb pages are not migrated, so no-IOMMU DMA should use hugepages.
 *
 * ```ts
 * import { translatePages } from "@vfio-ts/vfio";
 * declare const vaddr: bigint;
 * const pages = translatePages(vaddr, 2 * 1024 * 1024);
 * console.log(pages.length); // 512 entries of 4 KiB
 * ```
 */
export function translatePages(vaddr: bigint, sizeBytes: number): BigUint64Array {
  const pageSize = libc.pageSize;
  checkRange(vaddr, sizeBytes, pageSize);
  const count = sizeBytes / pageSize;
  const entries = new BigUint64Array(count);
  const firstPage = vaddr / BigInt(pageSize);
  const fd = openPagemap();
  try {
    const got = libc.pread(fd, entries, Number(firstPage) * PAGEMAP_ENTRY_BYTES, PAGEMAP_PATH);
    if (got !== entries.byteLength) {
      throw new VfioError(`${PAGEMAP_PATH}: short read (${got} of ${entries.byteLength} bytes)`);
    }
  } finally {
    libc.close(fd);
  }
  const ps = BigInt(pageSize);
  for (let i = 0; i < count; i++) entries[i] = decode(entries[i], vaddr + BigInt(i) * ps, pageSize);
  return entries;
}

/**
 * The physical address of one byte, with one `open` + `pread` + `close` of pagemap per call: for diagnostics and
 * as the baseline the per-mapping table of `lib/iommu/noiommu.ts` is measured against. Drivers should never call
 * it per packet.
 *
 * ```ts
 * import { physicalAddressOf } from "@vfio-ts/vfio";
 * declare const vaddr: bigint;
 * console.log(physicalAddressOf(vaddr + 100n).toString(16));
 * ```
 */
export function physicalAddressOf(vaddr: bigint): bigint {
  const pageSize = BigInt(libc.pageSize);
  const entry = new BigUint64Array(1);
  const fd = openPagemap();
  try {
    libc.pread(fd, entry, Number(vaddr / pageSize) * PAGEMAP_ENTRY_BYTES, PAGEMAP_PATH);
  } finally {
    libc.close(fd);
  }
  return decode(entry[0], vaddr, libc.pageSize) + vaddr % pageSize;
}

/**
 * Reads the raw pagemap entry of the page holding `vaddr` through an already open pagemap fd (one `pread`).
 * For benchmarks and tests that need the entry bits themselves.
 *
 * ```ts
 * import { readPagemapEntry } from "./pagemap.ts";
 * declare const fd: number, vaddr: bigint;
 * const present = (readPagemapEntry(fd, vaddr) >> 63n) === 1n;
 * ```
 */
export function readPagemapEntry(fd: number, vaddr: bigint, scratch: BigUint64Array = new BigUint64Array(1)): bigint {
  libc.pread(fd, scratch.subarray(0, 1), Number(vaddr / BigInt(libc.pageSize)) * PAGEMAP_ENTRY_BYTES, PAGEMAP_PATH);
  return scratch[0];
}

/**
 * Opens `/proc/self/pagemap` read-only for {@linkcode readPagemapEntry}; close it with `libc.close`.
 *
 * ```ts
 * import { openPagemapFd, readPagemapEntry } from "./pagemap.ts";
 * import { libc } from "../../ffi/libc.ts";
 * const fd = openPagemapFd();
 * try { console.log(readPagemapEntry(fd, 0x400000n)); } finally { libc.close(fd); }
 * ```
 */
export function openPagemapFd(): number {
  return openPagemap();
}
