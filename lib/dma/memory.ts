/**
 * Process memory a device can DMA into: anonymous, populated up front, locked, and kept out of forked children.
 * Backed by 2 MiB hugepages when asked for (or, by default, when some are free), else by base pages.
 *
 * The memory itself knows nothing of IOMMUs: a `DmaMapper` turns it into bus addresses (see `lib/dma/buffer.ts`,
 * which does both).
 *
 * ```ts
 * import { DmaMemory } from "@vfio-ts/vfio";
 * using mem = DmaMemory.alloc(64 * 1024, { hugepages: "never" });
 * console.log(mem.vaddr, mem.size, mem.hugepage); // 0x7f.., 65536, false
 * ```
 * @module
 */
import {
  MADV_DONTFORK,
  MAP_ANONYMOUS,
  MAP_HUGE_SHIFT,
  MAP_HUGETLB,
  MAP_POPULATE,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  RLIMIT_MEMLOCK,
} from "../../ffi/constants.ts";
import { libc } from "../../ffi/libc.ts";
import { ClosedError, OutOfRangeError, SystemError, throwErrno, VfioError } from "../errors.ts";
import { hugepageStatus } from "../sysfs/hugepages.ts";

/** The hugepage size vfio-ts uses: 2 MiB (x86_64 and aarch64 with 4 KiB base pages). */
export const HUGEPAGE_SIZE = 2 * 1024 * 1024;

const HUGEPAGE_SHIFT = 21;

/**
 * Whether to back DMA memory with 2 MiB hugepages:
 * - `"require"`: hugepages or an error that says how to reserve them;
 * - `"prefer"` (default): hugepages when enough are free, base pages otherwise;
 * - `"never"`: base pages only.
 */
export type HugepagePolicy = "require" | "prefer" | "never";

/** Options of {@linkcode DmaMemory.alloc}. */
export interface DmaMemoryOptions {
  /** Hugepage policy (default `"prefer"`). */
  hugepages?: HugepagePolicy;
}

/** Unused and total 2 MiB hugepages (from `lib/sysfs/hugepages.ts`), `null` when the kernel has none. */
function hugepages2M(): { available: number; total: number } | null {
  const pool = hugepageStatus().pools.find((p) => p.sizeKiB === HUGEPAGE_SIZE / 1024);
  return pool ? { available: pool.free - pool.reserved, total: pool.total } : null;
}

function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return "unlimited";
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/** The remedy for a refused page lock, naming the amount asked for (when known) and the current RLIMIT_MEMLOCK. */
export function memlockRemedy(neededBytes?: number): string {
  let limit = "unknown";
  try {
    const l = libc.getrlimit(RLIMIT_MEMLOCK);
    limit = `soft ${formatBytes(l.soft)}, hard ${formatBytes(l.hard)}`;
  } catch { /* keep "unknown" */ }
  const need = neededBytes === undefined ? "" : `${formatBytes(neededBytes)} more locked memory is needed, `;
  return `${need}RLIMIT_MEMLOCK (${limit}) is too low for this DMA memory: raise it with \`ulimit -l unlimited\` ` +
    "(as root, before starting the runtime), `LimitMEMLOCK=infinity` in a systemd unit, or a `memlock` line in " +
    "/etc/security/limits.conf; or run as root (CAP_IPC_LOCK)";
}

function hugepageRemedy(needed: number): string {
  const counts = hugepages2M();
  const have = counts ? `${counts.available} of ${counts.total} unused` : "none configured";
  return `${needed} free 2 MiB hugepage(s) needed, ${have}: reserve some with ` +
    `\`echo ${Math.max(64, needed)} | sudo tee /proc/sys/vm/nr_hugepages\` (or hugepages=N on the kernel command ` +
    `line), or pass { hugepages: "prefer" } to fall back to ${libc.pageSize / 1024} KiB pages`;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/**
 * Anonymous process memory prepared for DMA: mapped with `MAP_POPULATE` (every page present now), locked with
 * `mlock` (never swapped out), and marked `MADV_DONTFORK` (a forked child does not share or copy-on-write it).
 *
 * Pinning caveat: `mlock` keeps pages resident but does not stop the kernel from *migrating* them (compaction,
 * NUMA balancing), which would change their physical addresses. Type1/iommufd mappings pin the pages themselves,
 * so this only matters in no-IOMMU mode, where hugepages (never migrated) are the safe choice.
 *
 * ```ts
 * import { DmaMemory } from "@vfio-ts/vfio";
 * using mem = DmaMemory.alloc(5000, { hugepages: "never" });
 * console.log(mem.size); // 8192: rounded up to the page size
 * ```
 */
export class DmaMemory {
  #vaddr: bigint;
  readonly #sizeBytes: number;
  readonly #pageSize: number;
  #closed = false;

  private constructor(vaddr: bigint, sizeBytes: number, pageSize: number) {
    this.#vaddr = vaddr;
    this.#sizeBytes = sizeBytes;
    this.#pageSize = pageSize;
  }

  /**
   * Allocates at least `sizeBytes` (rounded up to the page size: 2 MiB with hugepages, the base page size
   * otherwise), zero-filled, populated, locked and excluded from fork.
   *
   * ```ts
   * import { DmaMemory } from "./memory.ts";
   * using mem = DmaMemory.alloc(1 << 20, { hugepages: "prefer" });
   * console.log(mem.hugepage ? "2 MiB pages" : "base pages");
   * ```
   */
  static alloc(sizeBytes: number, options: DmaMemoryOptions = {}): DmaMemory {
    const policy = options.hugepages ?? "prefer";
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) {
      throw new OutOfRangeError(`DMA memory size must be a positive integer, got ${sizeBytes}`);
    }
    if (policy !== "require" && policy !== "prefer" && policy !== "never") {
      throw new VfioError(`unknown hugepage policy "${policy}"`, { remedy: 'use "require", "prefer" or "never"' });
    }
    if (policy !== "never") {
      const size = roundUp(sizeBytes, HUGEPAGE_SIZE);
      const needed = size / HUGEPAGE_SIZE;
      const counts = hugepages2M();
      if (policy === "require" || (counts !== null && counts.available >= needed)) {
        const vaddr = DmaMemory.#map(size, MAP_HUGETLB | (HUGEPAGE_SHIFT << MAP_HUGE_SHIFT), policy, needed);
        if (vaddr !== null) return DmaMemory.#prepare(vaddr, size, HUGEPAGE_SIZE);
      }
    }
    const size = roundUp(sizeBytes, libc.pageSize);
    const vaddr = DmaMemory.#map(size, 0, "never", 0)!;
    return DmaMemory.#prepare(vaddr, size, libc.pageSize);
  }

  /** mmap; `null` when hugepages are only preferred and none could be had. */
  static #map(size: number, extraFlags: number, policy: HugepagePolicy, needed: number): bigint | null {
    const flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | extraFlags;
    try {
      return libc.mmap(size, PROT_READ | PROT_WRITE, flags, -1, 0, `${formatBytes(size)} of DMA memory`);
    } catch (e) {
      if (!(e instanceof SystemError) || extraFlags === 0) throw e;
      if (policy === "prefer" && (e.code === "ENOMEM" || e.code === "EINVAL")) return null;
      if (e.code === "ENOMEM" || e.code === "EINVAL") {
        throwErrno(e.syscall, e.errno, {
          target: `${formatBytes(size)} of hugepage DMA memory`,
          remedy: hugepageRemedy(needed),
        });
      }
      throw e;
    }
  }

  /** mlock + MADV_DONTFORK, unmapping again if either fails. */
  static #prepare(vaddr: bigint, size: number, pageSize: number): DmaMemory {
    try {
      try {
        libc.mlock(vaddr, size);
      } catch (e) {
        if (e instanceof SystemError && (e.code === "ENOMEM" || e.code === "EPERM" || e.code === "EAGAIN")) {
          throwErrno(e.syscall, e.errno, {
            target: `${formatBytes(size)} of DMA memory`,
            remedy: memlockRemedy(size),
          });
        }
        throw e;
      }
      libc.madvise(vaddr, size, MADV_DONTFORK);
    } catch (e) {
      libc.munmap(vaddr, size);
      throw e;
    }
    return new DmaMemory(vaddr, size, pageSize);
  }

  /** The process address of the first byte (throws `ClosedError` after close). */
  get vaddr(): bigint {
    if (this.#closed) throw new ClosedError("DMA memory");
    return this.#vaddr;
  }

  /** The size in bytes, a multiple of {@linkcode pageSize}. */
  get size(): number {
    return this.#sizeBytes;
  }

  /** The size of the pages backing it: 2 MiB for hugepages, else the base page size. */
  get pageSize(): number {
    return this.#pageSize;
  }

  /** True when backed by 2 MiB hugepages. */
  get hugepage(): boolean {
    return this.#pageSize === HUGEPAGE_SIZE;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Unmaps the memory (idempotent). Any view made over it must be gone (detached) first: touching unmapped memory
   * crashes the process. Unmap it from the IOMMU first as well.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc.munmap(this.#vaddr, this.#sizeBytes);
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
