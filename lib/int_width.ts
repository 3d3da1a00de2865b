/**
 * The one check of an integer written to a register or memory word of a given width (8, 16 or 32 bits): any integer
 * from -2^(bits-1) to 2^bits - 1, as its two's-complement bits. `Region`, `DmaBuffer` and a worker's shared-window
 * view all take values that way.
 *
 * ```ts
 * import { checkIntWidth } from "./int_width.ts";
 * checkIntWidth(0xffff_ffff, 32, "BAR0 write32"); // fine
 * checkIntWidth(-1, 32, "BAR0 write32"); // fine: 0xffffffff
 * ```
 * @module
 */
import { OutOfRangeError } from "./errors.ts";
import { hex } from "./hex.ts";

/**
 * Throws an `OutOfRangeError` (`"<what> of <value>: not a <bits>-bit integer"`, with the range as remedy) unless
 * `value` is an integer from -2^(bits-1) to 2^bits - 1.
 *
 * ```ts
 * import { checkIntWidth } from "./int_width.ts";
 * checkIntWidth(256, 8, "write8"); // throws OutOfRangeError
 * ```
 */
export function checkIntWidth(value: number, bits: number, what: string): void {
  if (!Number.isInteger(value) || value < -(2 ** (bits - 1)) || value >= 2 ** bits) {
    throw new OutOfRangeError(`${what} of ${value}: not a ${bits}-bit integer`, {
      remedy: `pass an integer from ${-(2 ** (bits - 1))} to ${2 ** bits - 1} (${hex(2 ** bits - 1)})`,
    });
  }
}
