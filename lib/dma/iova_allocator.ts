/**
 * Chooses I/O virtual addresses inside the ranges an IOMMU accepts: first fit over a sorted free list whose
 * neighbours coalesce on free. Each block is aligned to its size's natural alignment (the largest power of two
 * not above the size), capped at 2 MiB, so a 2 MiB hugepage lands on a 2 MiB IOVA and the IOMMU can map it with
 * one large page. The first 64 KiB are never handed out, so a stray zero or small pointer is never a valid IOVA.
 *
 * ```ts
 * import { IovaAllocator } from "@vfio-ts/vfio/iommu";
 * const iovas = new IovaAllocator([{ start: 0n, end: (1n << 39n) - 1n }]);
 * const a = iovas.alloc(4096);       // 0x10000
 * const b = iovas.alloc(2 << 20);    // 0x200000
 * iovas.free(a);
 * console.log(a.toString(16), b.toString(16));
 * ```
 * @module
 */
import { OutOfRangeError, VfioError } from "../errors.ts";
import { hex } from "../hex.ts";
import type { IovaRange } from "../iommu/types.ts";

/** Options of {@linkcode IovaAllocator}. */
export interface IovaAllocatorOptions {
  /** IOVAs below this are never used (default 64 KiB). */
  reserveBelow?: bigint;
  /**
   * The lowest IOVA to hand out, instead of `reserveBelow`: it must lie inside one of the ranges (and not above
   * `maxIova`), else the constructor throws `OutOfRangeError` naming the ranges. E.g. `0x1_0000_0000n` puts every
   * mapping above 4 GiB, so a device or driver that drops the upper 32 bits of an address is caught.
   */
  base?: bigint;
  /** Highest IOVA to use, inclusive, e.g. a device's DMA mask (`(1n << 28n) - 1n` for QEMU's edu). */
  maxIova?: bigint;
  /** Smallest unit and alignment: the IOMMU's smallest page size (default 4096). */
  minAlign?: number;
  /** Alignment cap (default 2 MiB). */
  maxAlign?: number;
}

interface Hole {
  start: bigint;
  end: bigint; // exclusive
}

function listRanges(ranges: readonly IovaRange[]): string {
  return ranges.map((r) => `${hex(r.start)}-${hex(r.end)}`).join(", ") || "none";
}

/** Throws unless `base` is page-aligned, inside one of `ranges` and not above `maxIova`. */
function checkBase(base: bigint, ranges: readonly IovaRange[], maxIova: bigint | undefined, align: number): void {
  if (base < 0n || base % BigInt(align) !== 0n) {
    throw new OutOfRangeError(`IOVA base ${hex(base)} is not a multiple of the IOMMU page size ${align}`);
  }
  if (!ranges.some((r) => base >= r.start && base <= r.end) || (maxIova !== undefined && base > maxIova)) {
    throw new OutOfRangeError(
      `IOVA base ${hex(base)} is outside the IOVA ranges the kernel reports (${listRanges(ranges)})` +
        (maxIova !== undefined ? ` or above the device's limit ${hex(maxIova)}` : ""),
      { remedy: "pick an iovaBase inside one of those ranges" },
    );
  }
}

/**
 * A first-fit IOVA allocator over a set of usable ranges.
 *
 * ```ts
 * import { IovaAllocator } from "@vfio-ts/vfio/iommu";
 * const iovas = new IovaAllocator([{ start: 0n, end: 0xfedfffffn }], { maxIova: (1n << 28n) - 1n });
 * const iova = iovas.alloc(8192);
 * iovas.free(iova);
 * ```
 */
export class IovaAllocator {
  readonly #holes: Hole[] = [];
  readonly #ranges: Hole[] = [];
  readonly #allocated = new Map<bigint, bigint>();
  readonly #minAlign: number;
  readonly #maxAlign: number;
  #inUse = 0n;

  /** Builds an allocator over `ranges` (inclusive ends, as the kernel reports them). */
  constructor(ranges: readonly IovaRange[], options: IovaAllocatorOptions = {}) {
    this.#minAlign = options.minAlign ?? 4096;
    const reserveBelow = options.base ?? options.reserveBelow ?? 0x10000n;
    if (options.base !== undefined) checkBase(options.base, ranges, options.maxIova, this.#minAlign);
    this.#maxAlign = Math.max(options.maxAlign ?? 2 * 1024 * 1024, this.#minAlign);
    const sorted = [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    const align = BigInt(this.#minAlign);
    for (const r of sorted) {
      let start = r.start < reserveBelow ? reserveBelow : r.start;
      let end = r.end + 1n;
      if (options.maxIova !== undefined && end > options.maxIova + 1n) end = options.maxIova + 1n;
      start = ((start + align - 1n) / align) * align;
      end = (end / align) * align;
      if (end <= start) continue;
      const last = this.#ranges[this.#ranges.length - 1];
      if (last && start <= last.end) {
        if (end > last.end) last.end = end;
        continue;
      }
      this.#ranges.push({ start, end });
    }
    for (const r of this.#ranges) this.#holes.push({ ...r });
    if (this.#ranges.length === 0) {
      throw new OutOfRangeError(
        `no usable IOVA range: ${listRanges(ranges)} ` +
          `above ${hex(reserveBelow)}${options.maxIova !== undefined ? ` and below ${hex(options.maxIova)}` : ""}`,
      );
    }
  }

  /** The alignment {@linkcode alloc} uses: the largest power of two not above `sizeBytes`, within min/max align. */
  alignmentFor(sizeBytes: number): number {
    let align = this.#minAlign;
    while (align * 2 <= sizeBytes && align * 2 <= this.#maxAlign) align *= 2;
    return align;
  }

  #checkSize(sizeBytes: number): bigint {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % this.#minAlign !== 0) {
      throw new OutOfRangeError(
        `IOVA size ${sizeBytes} is not a positive multiple of the IOMMU page size ${this.#minAlign}`,
      );
    }
    return BigInt(sizeBytes);
  }

  /** Takes `[start, start + size)` out of hole `i`. */
  #carve(i: number, start: bigint, size: bigint): void {
    const h = this.#holes[i];
    const end = start + size;
    const pieces: Hole[] = [];
    if (h.start < start) pieces.push({ start: h.start, end: start });
    if (end < h.end) pieces.push({ start: end, end: h.end });
    this.#holes.splice(i, 1, ...pieces);
    this.#allocated.set(start, size);
    this.#inUse += size;
  }

  /**
   * Reserves `sizeBytes` at the lowest suitably aligned free IOVA and returns it.
   * Throws `OutOfRangeError` when no range could ever hold it, `VfioError` when the space is exhausted.
   */
  alloc(sizeBytes: number): bigint {
    const size = this.#checkSize(sizeBytes);
    const align = BigInt(this.alignmentFor(sizeBytes));
    for (let i = 0; i < this.#holes.length; i++) {
      const h = this.#holes[i];
      const start = ((h.start + align - 1n) / align) * align;
      if (start + size <= h.end) {
        this.#carve(i, start, size);
        return start;
      }
    }
    if (!this.#ranges.some((r) => r.end - r.start >= size)) {
      throw new OutOfRangeError(
        `a ${sizeBytes}-byte DMA mapping is larger than every usable IOVA range (${this.describeRanges()})`,
        { remedy: "split it into smaller buffers" },
      );
    }
    throw new VfioError(
      `IOVA space exhausted: no free ${sizeBytes}-byte block aligned to ${align} bytes ` +
        `(${this.#inUse} bytes in use in ${this.#allocated.size} mappings; ranges ${this.describeRanges()})`,
      { remedy: "close DMA buffers that are no longer needed, or use fewer, larger buffers (pools)" },
    );
  }

  /** Reserves exactly `[iova, iova + sizeBytes)` (e.g. to identity-map); throws when outside the ranges or in use. */
  allocAt(iova: bigint, sizeBytes: number): bigint {
    const size = this.#checkSize(sizeBytes);
    if (iova % BigInt(this.#minAlign) !== 0n) {
      throw new OutOfRangeError(`IOVA ${hex(iova)} is not aligned to the IOMMU page size ${this.#minAlign}`);
    }
    if (!this.#ranges.some((r) => iova >= r.start && iova + size <= r.end)) {
      throw new OutOfRangeError(
        `IOVA ${hex(iova)}+${sizeBytes} is outside the usable ranges (${this.describeRanges()})`,
        { remedy: "pick an IOVA inside one of the ranges the IOMMU reports" },
      );
    }
    const i = this.#holes.findIndex((h) => iova >= h.start && iova + size <= h.end);
    if (i < 0) throw new VfioError(`IOVA ${hex(iova)}+${sizeBytes} overlaps a mapping already made`);
    this.#carve(i, iova, size);
    return iova;
  }

  /** Returns a block from {@linkcode alloc}/{@linkcode allocAt}, merging it with free neighbours. */
  free(iova: bigint): void {
    const size = this.#allocated.get(iova);
    if (size === undefined) {
      throw new OutOfRangeError(`IOVA ${hex(iova)} was not allocated here (or was already freed)`);
    }
    this.#allocated.delete(iova);
    this.#inUse -= size;
    const end = iova + size;
    let i = 0;
    while (i < this.#holes.length && this.#holes[i].start < iova) i++;
    const prev = this.#holes[i - 1];
    const next = this.#holes[i];
    if (prev && prev.end === iova && next && next.start === end) {
      prev.end = next.end;
      this.#holes.splice(i, 1);
    } else if (prev && prev.end === iova) {
      prev.end = end;
    } else if (next && next.start === end) {
      next.start = iova;
    } else {
      this.#holes.splice(i, 0, { start: iova, end });
    }
  }

  /** Size of the block allocated at `iova`, or `undefined`. */
  sizeOf(iova: bigint): number | undefined {
    const s = this.#allocated.get(iova);
    return s === undefined ? undefined : Number(s);
  }

  /** Bytes currently allocated. */
  get bytesInUse(): bigint {
    return this.#inUse;
  }

  /** The free blocks, lowest first (inclusive ends, like {@linkcode IovaRange}). */
  get freeRanges(): IovaRange[] {
    return this.#holes.map((h) => ({ start: h.start, end: h.end - 1n }));
  }

  /** The usable ranges after clipping, for messages. */
  describeRanges(): string {
    return this.#ranges.map((r) => `${hex(r.start)}-${hex(r.end - 1n)}`).join(", ");
  }
}
