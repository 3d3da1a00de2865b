/**
 * Hugepage pools (`/proc/meminfo`, `/sys/kernel/mm/hugepages/hugepages-<size>kB/`): how many there are, how many
 * are free, and reserving more. DMA buffers on 2 MiB pages are physically contiguous per page and take fewer
 * IOMMU mappings.
 *
 * ```ts
 * import { hugepageStatus, reserveHugepages } from "@vfio-ts/vfio/sysfs";
 * console.log(hugepageStatus().defaultSizeKiB); // 2048
 * reserveHugepages(64); // make sure 64 free 2 MiB pages exist
 * ```
 * @module
 */

import { readdirSync } from "node:fs";
import { join } from "node:path";
import { UnsupportedError, VfioError } from "../errors.ts";
import { hostPath, readAttr, readNumber, type SysfsOptions, writeAttr } from "./attr.ts";

/** One hugepage pool (one page size). */
export interface HugepagePool {
  /** Page size in KiB (2048, 1048576 …). */
  readonly sizeKiB: number;
  /** Pages in the pool (`nr_hugepages`). */
  readonly total: number;
  /** Pages not yet handed out (`free_hugepages`). */
  readonly free: number;
  /** Pages promised to mappings but not yet faulted in (`resv_hugepages`). */
  readonly reserved: number;
  /** Surplus pages above `nr_hugepages` (`surplus_hugepages`). */
  readonly surplus: number;
}

/** The hugepage picture of the machine. */
export interface HugepageStatus {
  /** The default hugepage size in KiB (`Hugepagesize` in /proc/meminfo), `null` without hugetlb support. */
  readonly defaultSizeKiB: number | null;
  /** `HugePages_Total` of the default size. */
  readonly total: number;
  /** `HugePages_Free` of the default size. */
  readonly free: number;
  /** Every page size the kernel offers. */
  readonly pools: readonly HugepagePool[];
}

function meminfoField(text: string, name: string): number | null {
  const m = new RegExp(`^${name}:\\s*(\\d+)`, "m").exec(text);
  return m ? Number(m[1]) : null;
}

function poolDir(sizeKiB: number, options: SysfsOptions): string {
  return hostPath(options, `/sys/kernel/mm/hugepages/hugepages-${sizeKiB}kB`);
}

function readPool(sizeKiB: number, options: SysfsOptions): HugepagePool | null {
  const dir = poolDir(sizeKiB, options);
  const total = readNumber(join(dir, "nr_hugepages"));
  if (total === null) return null;
  return {
    sizeKiB,
    total,
    free: readNumber(join(dir, "free_hugepages")) ?? 0,
    reserved: readNumber(join(dir, "resv_hugepages")) ?? 0,
    surplus: readNumber(join(dir, "surplus_hugepages")) ?? 0,
  };
}

/**
 * Reads the hugepage pools.
 *
 * ```ts
 * import { hugepageStatus } from "@vfio-ts/vfio/sysfs";
 * for (const p of hugepageStatus().pools) console.log(`${p.sizeKiB} kB: ${p.free}/${p.total} free`);
 * ```
 */
export function hugepageStatus(options: SysfsOptions = {}): HugepageStatus {
  const meminfo = readAttr(hostPath(options, "/proc/meminfo")) ?? "";
  let sizes: number[] = [];
  try {
    sizes = readdirSync(hostPath(options, "/sys/kernel/mm/hugepages"))
      .map((n) => /^hugepages-(\d+)kB$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
  } catch {
    // no hugetlb support
  }
  return {
    defaultSizeKiB: meminfoField(meminfo, "Hugepagesize"),
    total: meminfoField(meminfo, "HugePages_Total") ?? 0,
    free: meminfoField(meminfo, "HugePages_Free") ?? 0,
    pools: sizes.map((s) => readPool(s, options)).filter((p): p is HugepagePool => p !== null),
  };
}

/**
 * Makes sure at least `count` pages of `sizeKiB` are free, growing the pool (`nr_hugepages`) by what is missing.
 * Never shrinks a pool. Returns the pool afterwards.
 *
 * @throws {UnsupportedError} when the kernel has no pool of that size.
 * @throws {VfioError} when not root, or when the kernel could not find enough contiguous free memory.
 *
 * ```ts
 * import { reserveHugepages } from "@vfio-ts/vfio/sysfs";
 * const pool = reserveHugepages(16); // 16 free 2 MiB pages = 32 MiB
 * console.log(pool.free >= 16); // true
 * ```
 */
export function reserveHugepages(count: number, sizeKiB = 2048, options: SysfsOptions = {}): HugepagePool {
  if (!Number.isInteger(count) || count < 0) {
    throw new VfioError(`invalid hugepage count ${count}`, { remedy: "pass a whole number ≥ 0" });
  }
  const pool = readPool(sizeKiB, options);
  if (pool === null) {
    const sizes = hugepageStatus(options).pools.map((p) => `${p.sizeKiB}`);
    throw new UnsupportedError(`this kernel has no ${sizeKiB} kB hugepages`, {
      remedy: sizes.length > 0
        ? `use one of the sizes it has: ${sizes.join(", ")} kB`
        : "the kernel lacks hugetlb support (CONFIG_HUGETLBFS)",
    });
  }
  const available = pool.free - pool.reserved;
  if (available >= count) return pool;
  const wanted = pool.total + (count - available);
  writeAttr(join(poolDir(sizeKiB, options), "nr_hugepages"), String(wanted), {
    purpose: `reserve ${count} free ${sizeKiB} kB hugepages`,
  });
  const after = readPool(sizeKiB, options) as HugepagePool;
  if (after.free - after.reserved < count) {
    throw new VfioError(
      `the kernel could not make ${count} ${sizeKiB} kB hugepages available: the pool has ${after.total} of the ` +
        `${wanted} asked for, ${after.free - after.reserved} of them unused (not enough contiguous free memory?)`,
      {
        remedy: "free memory (echo 3 > /proc/sys/vm/drop_caches; echo 1 > /proc/sys/vm/compact_memory) and try " +
          `again, or reserve them at boot (hugepages=${wanted} on the kernel command line)`,
      },
    );
  }
  return after;
}
