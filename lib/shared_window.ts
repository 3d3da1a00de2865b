/**
 * Handing a device queue's memory to a worker thread. A DMA buffer or a mapped BAR belongs to the thread that opened
 * it, but its memory is the process's: {@linkcode shareWindow} describes a window of it as plain data (addresses as
 * bigints, lengths as numbers) that `postMessage` copies to a `Worker`, and {@linkcode openSharedWindow}, in the
 * worker, turns that description back into an `ArrayBuffer` over the same memory (no copy), from which the worker
 * makes its own typed-array views. One worker per queue pair, each with its own descriptor rings and buffers, is how
 * a driver scales over cores.
 *
 * **Unsafe by nature**: the worker's views are raw memory. The owner must keep the DMA buffer or region open until
 * every worker that opened a window of it has stopped using it (terminate or join the workers first, then close);
 * nothing can check that across threads, and a view of unmapped memory crashes the process. Register (MMIO) access
 * from a worker: 32-bit reads and writes through a `Uint32Array`, 64-bit ones through a `BigUint64Array`; read
 * anything the device writes with `deviceLoad` (never hoisted out of a loop; unlike `Atomics.load` under Bun, never
 * a write).
 *
 * ```ts
 * import { openSharedWindow, shareWindow } from "@vfio-ts/vfio";
 * import type { DmaBuffer } from "@vfio-ts/vfio";
 * declare const rings: DmaBuffer; // queue 0 at 0, queue 1 at 64 KiB
 * const worker = new Worker(new URL("./queue_worker.ts", import.meta.url), { type: "module" });
 * worker.postMessage({ queue: shareWindow(rings, 0x10000, 0x10000) });
 * // in queue_worker.ts (post a "ready" message first if it awaits imports: earlier messages can be lost):
 * globalThis.addEventListener("message", (e: Event) => {
 *   const u32 = new Uint32Array(openSharedWindow((e as MessageEvent).data.queue));
 *   u32[0] = 1;
 * });
 * ```
 *
 * Descriptors carry bus addresses: the window carries them for every byte, so a worker never asks the owner. A
 * contiguous buffer's window is `busAddress + offset` throughout; a non-contiguous one (no IOMMU, base pages: each
 * 4 KiB page has its own physical address) lists the bus address of every page it touches
 * ({@linkcode SharedWindow.pageBusAddresses}). {@linkcode windowBusAddress} looks one up by offset, bounds-checked,
 * and {@linkcode viewSharedWindow} gives a worker `read32`/`write32`/`busAddress` over a window, the shape of a
 * `DmaBuffer` or `Region` that queue code written for those accepts:
 *
 * ```ts
 * import { viewSharedWindow, type SharedWindow } from "@vfio-ts/vfio";
 * declare const bar: SharedWindow, queue: SharedWindow; // posted by the owner
 * const regs = viewSharedWindow(bar), ring = viewSharedWindow(queue);
 * ring.u8.fill(0);
 * regs.write32(0x1000, 1); // a doorbell
 * console.log(ring.busAddress(4096).toString(16)); // the second page's bus address, in any mode
 * ```
 * @module
 */
import { libc } from "../ffi/libc.ts";
import { deviceLoad } from "./device_load.ts";
import { DmaBuffer } from "./dma/buffer.ts";
import { OutOfRangeError } from "./errors.ts";
import { checkIntWidth } from "./int_width.ts";
import type { Region } from "./region.ts";

/** Marks a {@linkcode SharedWindow}, so that a worker refuses a message that is not one. */
const KIND = "vfio-ts/shared-window";

/**
 * A window of a DMA buffer or mapped region, described as data a worker can receive (structured-cloneable).
 *
 * ```ts
 * import { shareWindow } from "@vfio-ts/vfio";
 * import type { Region } from "@vfio-ts/vfio";
 * declare const bar0: Region;
 * const w = shareWindow(bar0);
 * console.log(w.what, w.byteLength, w.busAddress); // "BAR0 of …", its mapped length, null
 * ```
 */
export interface SharedWindow {
  /** Always `"vfio-ts/shared-window"`. */
  readonly kind: "vfio-ts/shared-window";
  /** What the window is of (for messages). */
  readonly what: string;
  /** The process virtual address of the window's first byte. */
  readonly address: bigint;
  /** The window's length in bytes. */
  readonly byteLength: number;
  /**
   * For a DMA buffer: the bus address of the window's first byte (what descriptors carry; a contiguous buffer keeps
   * `busAddress + offset` for the whole window, others per page: use {@linkcode windowBusAddress}). Null for a region.
   */
  readonly busAddress: bigint | null;
  /** For a DMA buffer: whether the buffer's bus addresses are one contiguous run. Null for a region. */
  readonly contiguous: boolean | null;
  /** For a DMA buffer: the size of the pages backing it (4 KiB, or 2 MiB hugepages). Null for a region. */
  readonly pageSize: number | null;
  /**
   * For a DMA buffer that is not contiguous: the bus address of the first byte of every page the window touches, in
   * order (the first page may begin before the window). Null for a region or a contiguous buffer.
   */
  readonly pageBusAddresses: readonly bigint[] | null;
}

/**
 * Describes `byteLength` bytes at `offset` of a DMA buffer or of a region's mapping at offset 0 (default: from
 * `offset` to the end), for a worker to open with {@linkcode openSharedWindow}. The offset must be 8-byte aligned
 * (so every typed-array view fits); throws an `OutOfRangeError` for a window outside the memory, a `ClosedError`
 * for a closed buffer or region.
 *
 * ```ts
 * import { shareWindow } from "@vfio-ts/vfio";
 * import type { DmaBuffer } from "@vfio-ts/vfio";
 * declare const buf: DmaBuffer;
 * const half = shareWindow(buf, buf.size / 2);
 * ```
 */
export function shareWindow(target: DmaBuffer | Region, offset: number = 0, byteLength?: number): SharedWindow {
  let address: bigint, size: number, what: string;
  if (target instanceof DmaBuffer) {
    address = target.vaddr; // throws ClosedError when closed
    size = target.size;
    what = `DMA buffer (${size} bytes)`;
  } else {
    address = target.unsafeAddress; // throws ClosedError / UnsupportedError
    const first = target.mappedAreas.find((a) => a.offset === 0)!;
    size = Math.min(first.size, target.size);
    what = target.name;
  }
  const length = byteLength ?? size - offset;
  if (
    !(Number.isSafeInteger(offset) && offset >= 0 && (offset & 7) === 0 && Number.isSafeInteger(length) &&
      length > 0 && offset + length <= size)
  ) {
    throw new OutOfRangeError(`window of ${length} bytes at ${offset}: not inside the ${size} bytes of ${what}`, {
      remedy: "share an 8-byte aligned, non-empty window inside the buffer or the region's mapping",
    });
  }
  const dma = target instanceof DmaBuffer ? target : null;
  let pages: bigint[] | null = null;
  if (dma && !dma.contiguous) {
    const page = dma.pageSize, first = offset - (offset % page);
    pages = [];
    for (let at = first; at < offset + length; at += page) pages.push(dma.busAddress(at));
  }
  return {
    kind: KIND,
    what: offset === 0 && length === size ? what : `${what} [${offset}, +${length})`,
    address: address + BigInt(offset),
    byteLength: length,
    busAddress: dma ? dma.busAddress(offset) : null,
    contiguous: dma ? dma.contiguous : null,
    pageSize: dma ? dma.pageSize : null,
    pageBusAddresses: pages,
  };
}

/** `window` after checking it is a window description (what a worker receives may be anything). */
function described(window: SharedWindow): SharedWindow {
  const w = window as Partial<SharedWindow> | null;
  if (
    !(w && w.kind === KIND && typeof w.address === "bigint" && w.address > 0n && Number.isSafeInteger(w.byteLength) &&
      w.byteLength! > 0)
  ) {
    throw new OutOfRangeError("not a shared window description", {
      remedy: "pass the object shareWindow() returned, as the owner posted it",
    });
  }
  return w as SharedWindow;
}

/**
 * In the worker: the memory a {@linkcode SharedWindow} describes, as an `ArrayBuffer` over the owner's mapping (no
 * copy). Make typed-array views of it. Throws an `OutOfRangeError` for anything that is not a window description.
 * See the module documentation for what the owner must guarantee.
 *
 * ```ts
 * import { deviceLoad, openSharedWindow } from "@vfio-ts/vfio";
 * import type { SharedWindow } from "@vfio-ts/vfio";
 * declare const w: SharedWindow;
 * const regs = new Uint32Array(openSharedWindow(w));
 * console.log(deviceLoad(regs, 0).toString(16));
 * ```
 */
export function openSharedWindow(window: SharedWindow): ArrayBuffer {
  const w = described(window);
  return libc.arrayBuffer(w.address, w.byteLength);
}

/**
 * The bus address a device must be given for the byte at `offset` of a DMA buffer's window, in any mode (per page
 * when the buffer is not contiguous); no system call, usable in the worker. Throws an `OutOfRangeError` for an
 * offset outside the window, for a region's window (no bus addresses) or for anything that is not a window.
 *
 * ```ts
 * import { windowBusAddress } from "@vfio-ts/vfio";
 * import type { SharedWindow } from "@vfio-ts/vfio";
 * declare const queue: SharedWindow; // shareWindow(buf, 0x10000, 0x10000) in the owner
 * const secondPage = windowBusAddress(queue, 4096); // buf.busAddress(0x11000)
 * ```
 */
export function windowBusAddress(window: SharedWindow, offset: number): bigint {
  const w = described(window);
  if (w.busAddress === null || typeof w.busAddress !== "bigint") {
    throw new OutOfRangeError(`${w.what}: a region's window has no bus addresses`, {
      remedy: "look bus addresses up in a window of a DMA buffer (shareWindow(buffer, ...))",
    });
  }
  if (!(Number.isSafeInteger(offset) && offset >= 0 && offset < w.byteLength)) {
    throw new OutOfRangeError(`bus address of byte ${offset} of ${w.what}: outside its ${w.byteLength} bytes`, {
      remedy: `pass an offset from 0 to ${w.byteLength - 1}, relative to the window's first byte`,
    });
  }
  const pages = w.pageBusAddresses, page = w.pageSize;
  if (!pages) return w.busAddress + BigInt(offset);
  const first = Array.isArray(pages) ? pages[0] : undefined;
  // From the start of the window's first page, which begins `busAddress - first` bytes before the window.
  const at = typeof first === "bigint" ? Number(w.busAddress - first) + offset : -1;
  const base = Number.isSafeInteger(page) && page! > 0 && at >= 0 ? pages[Math.floor(at / page!)] : undefined;
  if (typeof base !== "bigint") {
    throw new OutOfRangeError(`${w.what}: its page list does not cover byte ${offset}`, {
      remedy: "pass the object shareWindow() returned, as the owner posted it",
    });
  }
  return base + BigInt(at % page!);
}

/**
 * A worker's checked access to a {@linkcode SharedWindow}: typed views, 32-bit register-style reads and writes, and
 * bus addresses by offset. It has the shape queue code written for a `DmaBuffer` or a `Region` uses (`size`, `u8`,
 * `read32`, `write32`, `busAddress`), so the same code runs in the owner and in a worker.
 *
 * ```ts
 * import { viewSharedWindow } from "@vfio-ts/vfio";
 * import type { SharedWindow } from "@vfio-ts/vfio";
 * declare const ring: SharedWindow;
 * const v = viewSharedWindow(ring);
 * v.write32(0, 7);
 * console.log(v.read32(0), v.size, v.busAddress(64));
 * ```
 */
export interface SharedWindowView {
  /** The window's description, as posted. */
  readonly window: SharedWindow;
  /** The window's length in bytes. */
  readonly size: number;
  /** The window as bytes. */
  readonly u8: Uint8Array;
  /** The window as 32-bit words. */
  readonly u32: Uint32Array;
  /** Reads the 32-bit word at byte `offset` with `deviceLoad` (sees device writes; writes nothing). */
  read32(offset: number): number;
  /** Writes the 32-bit word at byte `offset` as one store; `value` is an integer from -2^31 to 2^32-1. */
  write32(offset: number, value: number): void;
  /** {@linkcode windowBusAddress} of this window. */
  busAddress(offset: number): bigint;
}

/**
 * In the worker: {@linkcode openSharedWindow} and checked accessors in one object ({@linkcode SharedWindowView}).
 * Accesses outside the window or misaligned ones throw an `OutOfRangeError`, as the owner's `DmaBuffer` and `Region`
 * do.
 *
 * ```ts
 * import { viewSharedWindow } from "@vfio-ts/vfio";
 * import type { SharedWindow } from "@vfio-ts/vfio";
 * declare const bar0: SharedWindow;
 * const regs = viewSharedWindow(bar0);
 * console.log(regs.read32(0x1c).toString(16)); // a status register
 * ```
 */
export function viewSharedWindow(window: SharedWindow): SharedWindowView {
  const w = described(window);
  const buffer = libc.arrayBuffer(w.address, w.byteLength);
  const u8 = new Uint8Array(buffer);
  const u32 = new Uint32Array(buffer, 0, Math.floor(w.byteLength / 4));
  const word = (offset: number, what: string): number => {
    if ((offset >>> 0) !== offset || (offset & 3) !== 0 || offset + 4 > w.byteLength) {
      throw new OutOfRangeError(`${what} at ${offset} of ${w.what}: outside its ${w.byteLength} bytes or misaligned`, {
        remedy: "use a multiple of 4 inside the window, relative to its first byte",
      });
    }
    return offset >>> 2;
  };
  return {
    window: w,
    size: w.byteLength,
    u8,
    u32,
    read32: (offset) => deviceLoad(u32, word(offset, "read32")),
    write32: (offset, value) => {
      const i = word(offset, "write32");
      checkIntWidth(value, 32, `${w.what} write32`);
      u32[i] = value;
    },
    busAddress: (offset) => windowBusAddress(w, offset),
  };
}
