/**
 * Checks on what the kernel answers before vfio-ts allocates or reads by it: the buffer size an info ioctl asks for
 * (`argsz`) is bounded, every count and offset of a capability chain must stay inside the buffer the kernel
 * filled, and chains must end. A violation is a {@linkcode MalformedReplyError}, never a `RangeError` or an
 * allocation of gigabytes.
 *
 * ```ts
 * import { capabilityChain, replyBytes } from "./kernel_reply.ts";
 * const bytes = new Uint8Array(64);
 * replyBytes("VFIO_IOMMU_GET_INFO", 64, 24); // 64
 * for (const cap of capabilityChain("VFIO_IOMMU_GET_INFO", bytes, 0, 24)) console.log(cap.id);
 * ```
 * @module
 */
import { VfioInfoCapHeader } from "./abi/vfio.ts";
import { MalformedReplyError } from "./errors.ts";

/**
 * The largest answer buffer the kernel may ask for (1 MiB). Real answers are tens to hundreds of bytes: a region's
 * sparse-mmap list, a container's IOVA ranges, a slot's dependent devices.
 */
export const MAX_REPLY_BYTES = 1 << 20;

/** Longest capability chain walked before the chain is declared looping. */
export const MAX_CAPABILITIES = 64;

/** The buffer size (`argsz`) the kernel asked for, checked: at least `minBytes`, at most {@linkcode MAX_REPLY_BYTES}. */
export function replyBytes(call: string, argsz: number, minBytes: number): number {
  if (!Number.isSafeInteger(argsz) || argsz < minBytes || argsz > MAX_REPLY_BYTES) {
    throw new MalformedReplyError(call, `asks for a ${argsz}-byte buffer (expected ${minBytes} to ${MAX_REPLY_BYTES})`);
  }
  return argsz;
}

/** Checks that `count` items of `itemBytes` starting at `offset` lie inside `bytes`. */
export function checkSpan(
  call: string,
  bytes: Uint8Array,
  offset: number,
  count: number,
  itemBytes: number,
  what: string,
): void {
  if (!Number.isSafeInteger(count) || count < 0 || offset + count * itemBytes > bytes.byteLength) {
    throw new MalformedReplyError(
      call,
      `lists ${count} ${what} at offset ${offset}, beyond its ${bytes.byteLength}-byte buffer`,
    );
  }
}

/** One capability of a chain: its id, version and offset in the buffer. */
export interface ChainEntry {
  /** The capability id. */
  readonly id: number;
  /** Its version. */
  readonly version: number;
  /** Its offset in the buffer (its header starts there). */
  readonly offset: number;
}

/**
 * Walks a `vfio_info_cap_header` chain starting at `first` (0: empty). Each header must lie after the fixed part
 * (`fixedBytes`) and inside the buffer, and no offset may repeat.
 */
export function capabilityChain(call: string, bytes: Uint8Array, first: number, fixedBytes: number): ChainEntry[] {
  const out: ChainEntry[] = [];
  const seen = new Set<number>();
  for (let at = first; at !== 0;) {
    if (at < fixedBytes || at + VfioInfoCapHeader.size > bytes.byteLength || seen.has(at)) {
      throw new MalformedReplyError(call, `has a malformed capability chain at offset ${at}`);
    }
    if (seen.size >= MAX_CAPABILITIES) {
      throw new MalformedReplyError(call, `has a capability chain longer than ${MAX_CAPABILITIES}`);
    }
    seen.add(at);
    const header = VfioInfoCapHeader.view(bytes, at);
    out.push({ id: header.id, version: header.version, offset: at });
    at = header.next;
  }
  return out;
}

/**
 * Runs an info ioctl whose answer may not fit: `ask` fills a buffer whose `argsz` says its size; when the kernel
 * answers with a bigger `argsz`, the call is repeated (at most twice) with a buffer that big, bounded by
 * {@linkcode MAX_REPLY_BYTES}. Returns the filled buffer.
 */
export function growingReply<V extends { argsz: number; readonly bytes: Uint8Array }>(
  call: string,
  def: { readonly size: number; alloc(extraBytes?: number): V },
  ask: (view: V) => void,
): V {
  let view = def.alloc();
  for (let attempt = 0;; attempt++) {
    const argsz = view.bytes.byteLength;
    view.argsz = argsz;
    ask(view);
    if (view.argsz <= argsz) return view;
    if (attempt >= 2) throw new MalformedReplyError(call, `keeps asking for a bigger buffer (${view.argsz} bytes)`);
    view = def.alloc(replyBytes(call, view.argsz, def.size) - def.size);
  }
}
