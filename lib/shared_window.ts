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
 * @module
 */
import { libc } from "../ffi/libc.ts";
import { DmaBuffer } from "./dma/buffer.ts";
import { OutOfRangeError } from "./errors.ts";
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
   * For a DMA buffer: the bus address of the window's first byte (what descriptors carry; contiguous buffers keep
   * `busAddress + offset` for the whole window, others per page: look them up in the owner). Null for a region.
   */
  readonly busAddress: bigint | null;
  /** For a DMA buffer: whether the window's bus addresses are contiguous. Null for a region. */
  readonly contiguous: boolean | null;
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
  return {
    kind: KIND,
    what: offset === 0 && length === size ? what : `${what} [${offset}, +${length})`,
    address: address + BigInt(offset),
    byteLength: length,
    busAddress: dma ? dma.busAddress(offset) : null,
    contiguous: dma ? dma.contiguous : null,
  };
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
  const w = window as Partial<SharedWindow> | null;
  if (
    !(w && w.kind === KIND && typeof w.address === "bigint" && w.address > 0n && Number.isSafeInteger(w.byteLength) &&
      w.byteLength! > 0)
  ) {
    throw new OutOfRangeError("not a shared window description", {
      remedy: "pass the object shareWindow() returned, as the owner posted it",
    });
  }
  return libc.arrayBuffer(w.address, w.byteLength!);
}
