/**
 * Physical Region Page entries (NVMe Base Specification 4.3): how a command names its data. PRP1 is the bus address of
 * the first byte (dword aligned, anywhere in its page); PRP2 is the second page when the data touches two pages, or
 * else the bus address of a PRP list naming every further page. Each page's bus address is asked for separately:
 * without an IOMMU the 4 KiB pages of one buffer are not physically contiguous. The memory is anything with a size,
 * bytes and bus addresses by offset ({@linkcode BusMemory}): a `DmaBuffer` in the thread that owns it, a shared
 * window's view (`viewSharedWindow`) in a worker.
 *
 * ```ts
 * import type { DmaBuffer } from "../../mod.ts";
 * import { PAGE, prpEntries } from "./prp.ts";
 * declare const data: DmaBuffer, lists: DmaBuffer;
 * const { prp1, prp2 } = prpEntries({ buffer: data, offset: 0, length: 4 * PAGE }, lists, 0); // a list of 3 pages
 * ```
 * @module
 */
import { OutOfRangeError } from "../../mod.ts";

/** The memory page size this layer programs (CC.MPS 0): PRP entries and queues are in these units. */
export const PAGE = 4096;
/** Entries in one PRP list page (this layer does not chain lists). */
export const PRP_LIST_ENTRIES = PAGE / 8;
/** The most bytes one command may move: PRP1's page plus one full list. */
export const MAX_PRP_BYTES = PAGE * PRP_LIST_ENTRIES;

/**
 * Memory a device reaches by DMA, as this layer needs it: what a `DmaBuffer` and a worker's `SharedWindowView` both
 * are. It starts on a page boundary (every `DmaBuffer` does; share windows at page-aligned offsets).
 *
 * ```ts
 * import { viewSharedWindow, type SharedWindow } from "../../mod.ts";
 * import type { BusMemory } from "./prp.ts";
 * declare const posted: SharedWindow;
 * const mem: BusMemory = viewSharedWindow(posted); // in a worker
 * console.log(mem.size, mem.busAddress(0));
 * ```
 */
export interface BusMemory {
  /** Its length in bytes. */
  readonly size: number;
  /** Its bytes. */
  readonly u8: Uint8Array;
  /** The bus address of the byte at `offset`. */
  busAddress(offset: number): bigint;
}

/** The data of one command: `length` bytes at byte `offset` of DMA memory. */
export interface DataRange {
  /** The memory (a `DmaBuffer`, or a shared window's view in a worker). */
  readonly buffer: BusMemory;
  /** Byte offset of the first byte: a multiple of 4. */
  readonly offset: number;
  /** Bytes, at least 1. */
  readonly length: number;
}

/** The two PRP fields of a command. */
export interface PrpEntries {
  /** PRP entry 1. */
  readonly prp1: bigint;
  /** PRP entry 2: 0, the second page, or a PRP list's bus address. */
  readonly prp2: bigint;
}

/**
 * The PRP entries for `data`, writing a PRP list at byte `listOffset` of `lists` (a page of its own) when the data
 * spans more than two pages. Throws `OutOfRangeError` for a range outside the buffer, a misaligned start, or more
 * than {@linkcode MAX_PRP_BYTES}.
 */
export function prpEntries(data: DataRange, lists: BusMemory, listOffset: number): PrpEntries {
  const { buffer, offset, length } = data;
  if (
    !Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 1 ||
    offset + length > buffer.size
  ) {
    throw new OutOfRangeError(
      `NVMe transfer of ${length} bytes at ${offset}: outside the ${buffer.size}-byte buffer`,
    );
  }
  if (offset % 4 !== 0) throw new OutOfRangeError(`NVMe transfer at ${offset}: PRP1 must be dword aligned`);
  const firstPage = offset - (offset % PAGE);
  const pages = Math.ceil((offset + length - firstPage) / PAGE);
  if (pages > PRP_LIST_ENTRIES + 1) {
    throw new OutOfRangeError(`NVMe transfer of ${length} bytes: more pages than one PRP list names`, {
      remedy: `split it into commands of at most ${MAX_PRP_BYTES} bytes`,
    });
  }
  const prp1 = buffer.busAddress(offset);
  if (Number(prp1 % BigInt(PAGE)) !== offset % PAGE) {
    throw new OutOfRangeError(`NVMe transfer at ${offset}: the memory does not start on a page boundary`, {
      remedy: "share windows of DMA buffers at page-aligned offsets",
    });
  }
  if (pages === 1) return { prp1, prp2: 0n };
  if (pages === 2) return { prp1, prp2: buffer.busAddress(firstPage + PAGE) };
  if (!(Number.isSafeInteger(listOffset) && listOffset >= 0 && listOffset % PAGE === 0 && listOffset < lists.size)) {
    throw new OutOfRangeError(`PRP list at ${listOffset}: not a page of the ${lists.size}-byte list memory`);
  }
  const list = new DataView(lists.u8.buffer, lists.u8.byteOffset + listOffset, PAGE);
  for (let i = 1; i < pages; i++) list.setBigUint64((i - 1) * 8, buffer.busAddress(firstPage + i * PAGE), true);
  return { prp1, prp2: lists.busAddress(listOffset) };
}
