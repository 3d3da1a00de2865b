/**
 * The one hex formatter: `hex(0x1f)` → `"0x1f"`, `hex(3, 4)` → `"0x0003"`; `hexDigits` without the prefix
 * (`hexDigits(3, 2)` → `"03"`, for PCI addresses, MAC bytes and dumps).
 *
 * ```ts
 * import { hex, hexDigits } from "./hex.ts";
 * console.log(hex(0x10ecn), hex(7, 4), hexDigits(0xab, 4)); // 0x10ec 0x0007 00ab
 * ```
 * @module
 */

/** `n` in hex with a `0x` prefix, zero-padded to `digits` digits. */
export function hex(n: number | bigint, digits: number = 0): string {
  return `0x${hexDigits(n, digits)}`;
}

/** `n` in lower-case hex without a prefix, zero-padded to `digits` digits. */
export function hexDigits(n: number | bigint, digits: number = 0): string {
  return n.toString(16).padStart(digits, "0");
}
