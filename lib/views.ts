/**
 * Typed views over mapped memory of any size. A runtime can only make an `ArrayBuffer` up to some length (measured:
 * Bun 1.4's `toArrayBuffer` and `new ArrayBuffer` stop at exactly 4 GiB; Deno 2.9's `getArrayBuffer` took 16 TiB
 * over a reserved mapping), so a mapping longer than that is covered by several views ("pieces"), each at most the
 * limit long and starting at a multiple of it, so that no aligned access of up to 8 bytes ever straddles two.
 *
 * ```ts
 * import { maxViewBytes, viewPieces } from "./views.ts";
 * declare const address: bigint;
 * const pieces = viewPieces(address, 16 * 2 ** 30); // Bun: 4 pieces of 4 GiB; Deno: 1 piece
 * console.log(maxViewBytes(), pieces.length);
 * ```
 * @module
 */
import { libc } from "../ffi/libc.ts";

/** One typed view (of each width) over part of a mapping. */
export interface ViewPiece {
  /** Start of the piece, in bytes from the start of the mapping (or region). */
  readonly offset: number;
  /** Its length in bytes. */
  readonly size: number;
  /** The process address of its first byte. */
  readonly address: bigint;
  readonly u8: Uint8Array;
  readonly u16: Uint16Array;
  readonly u32: Uint32Array;
  readonly u64: BigUint64Array;
}

/** Bun's largest `ArrayBuffer` (measured on Bun 1.4.5: 4 GiB works, 4 GiB + 1 byte is a RangeError). */
const BUN_MAX = 2 ** 32;
let limit: number = libc.runtime === "bun" ? BUN_MAX : Number.MAX_SAFE_INTEGER - 7;

/** The longest typed view this runtime can make over mapped memory, in bytes (4 GiB on Bun). */
export function maxViewBytes(): number {
  return limit;
}

/**
 * Lowers the view limit (a multiple of 8 and of the page size) so that tests can exercise the several-piece
 * paths on small mappings; returns the previous limit. Not for programs.
 *
 * ```ts
 * import { setMaxViewBytesForTesting } from "./views.ts";
 * const old = setMaxViewBytesForTesting(8192);
 * setMaxViewBytesForTesting(old);
 * ```
 */
export function setMaxViewBytesForTesting(bytes: number): number {
  const old = limit;
  limit = bytes;
  return old;
}

/** The views of `length` bytes at `address`, in pieces of at most {@linkcode maxViewBytes}. */
export function viewPieces(address: bigint, length: number, offset = 0): ViewPiece[] {
  const pieces: ViewPiece[] = [];
  for (let at = 0; at < length; at += limit) {
    const size = Math.min(limit, length - at);
    const a = address + BigInt(at);
    pieces.push({ offset: offset + at, size, address: a, ...typedViews(libc.arrayBuffer(a, size), 0, size) });
  }
  return pieces;
}

/**
 * The part `[start, end)` of `piece` (offsets in the piece's frame; `start` a multiple of 8 past the piece's start),
 * as a piece at `start - shift`: views over the same buffer, so detaching the original's buffer detaches it too.
 */
export function subPiece(piece: ViewPiece, start: number, end: number, shift: number): ViewPiece {
  const delta = start - piece.offset;
  return {
    offset: start - shift,
    size: end - start,
    address: piece.address + BigInt(delta),
    ...typedViews(piece.u8.buffer as ArrayBuffer, piece.u8.byteOffset + delta, end - start),
  };
}

/** The four typed views of `length` bytes of a buffer (the wider ones cover the whole words). */
export function typedViews(
  buffer: ArrayBuffer,
  byteOffset: number,
  length: number,
): { u8: Uint8Array; u16: Uint16Array; u32: Uint32Array; u64: BigUint64Array } {
  return {
    u8: new Uint8Array(buffer, byteOffset, length),
    u16: new Uint16Array(buffer, byteOffset, Math.floor(length / 2)),
    u32: new Uint32Array(buffer, byteOffset, Math.floor(length / 4)),
    u64: new BigUint64Array(buffer, byteOffset, Math.floor(length / 8)),
  };
}

/** Detaches the buffers of `pieces` (every view over them reads as empty afterwards). */
export function detachPieces(pieces: readonly ViewPiece[]): void {
  for (const p of pieces) {
    const b = p.u8.buffer as ArrayBuffer;
    if (!b.detached) b.transfer(0);
  }
}

/** The piece holding `[offset, offset + length)` entirely, or `undefined`. */
export function pieceFor(pieces: readonly ViewPiece[], offset: number, length: number): ViewPiece | undefined {
  for (const p of pieces) {
    if (offset >= p.offset && offset + length <= p.offset + p.size) return p;
  }
  return undefined;
}
