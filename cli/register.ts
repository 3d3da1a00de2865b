/**
 * What `read` and `write` share: parsing `<device> <bar> <offset> [value] --width`, opening the BAR (with an
 * error that lists the BARs the device has), and printing a register value.
 *
 * ```ts
 * import { parseBar, parseWidth } from "./register.ts";
 * parseBar("BAR2"); // 2
 * parseWidth("16"); // 16
 * ```
 * @module
 */

import type { Device } from "../lib/device.ts";
import { UnsupportedError, VfioError } from "../lib/errors.ts";
import { hex } from "../lib/hex.ts";
import { regionInfo } from "../lib/region.ts";
import type { Region } from "../lib/region.ts";
import { type Options, parseNumber, UsageError, type Values } from "./common.ts";
import { OPEN_HELP, OPEN_OPTIONS } from "./open_device.ts";

/** A register width in bits. */
export type Width = 8 | 16 | 32 | 64;

/** The options of `read` and `write`: `--width` and the ones that open the device. */
export const REGISTER_OPTIONS: Options = { ...OPEN_OPTIONS, width: { type: "string", short: "w" } };

/** Help text of {@linkcode REGISTER_OPTIONS}. */
export const REGISTER_HELP = `  --width N   8, 16, 32 (default) or 64
${OPEN_HELP}`;

/** Where a register is: the `<bar> <offset>` arguments and `--width` of `read` and `write`, parsed. */
export interface RegisterPlace {
  /** The BAR index, 0-5. */
  readonly bar: number;
  /** The byte offset in the BAR. */
  readonly offset: number;
  /** The register width in bits. */
  readonly width: Width;
}

/** Parses `--width`, then the `<bar>` and `<offset>` arguments (positionals 1 and 2; 0 is the device). */
export function parseRegisterPlace(positionals: readonly string[], values: Values): RegisterPlace {
  const width = parseWidth(values.width as string | undefined);
  return { width, bar: parseBar(positionals[1]), offset: parseOffset(positionals[2]) };
}

/** Parses a BAR number: `0`-`5`, or `bar0`/`BAR0`. */
export function parseBar(text: string): number {
  const m = /^(?:bar)?([0-9]+)$/i.exec(text.trim());
  if (!m) throw new UsageError(`invalid BAR "${text}"`, { remedy: "give a BAR number 0-5 (or BAR0-BAR5)" });
  const n = Number(m[1]);
  if (n > 5) throw new UsageError(`BAR${n} does not exist`, { remedy: "PCI devices have BAR0 to BAR5" });
  return n;
}

/** Parses `--width` (default 32): exactly `8`, `16`, `32` or `64`, in decimal (`0x20`, `32.0`, `3.2e1` are refused). */
export function parseWidth(text: string | undefined): Width {
  if (text === undefined) return 32;
  if (!/^(8|16|32|64)$/.test(text)) {
    throw new UsageError(`invalid width "${text}"`, { remedy: "use --width 8, 16, 32 or 64 (bits, in decimal)" });
  }
  return Number(text) as Width;
}

/** Parses a byte offset into a number (offsets beyond 2^53 cannot be in any BAR). */
export function parseOffset(text: string): number {
  const n = parseNumber(text, "offset");
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new UsageError(`offset ${text} is too large`, { remedy: "offsets are byte offsets inside the BAR" });
  }
  return Number(n);
}

/** Parses a value and checks that it fits the width. */
export function parseValue(text: string, width: Width): bigint {
  const v = parseNumber(text, "value");
  if (v >> BigInt(width) !== 0n) {
    throw new UsageError(`value ${text} does not fit in ${width} bits`, {
      remedy: `the largest ${width}-bit value is ${hex((1n << BigInt(width)) - 1n)}`,
    });
  }
  return v;
}

/** Opens BAR `index`; a BAR the device lacks gets an error naming the ones it has. */
export function openBar(dev: Device, index: number): Region {
  try {
    return dev.bar(index);
  } catch (e) {
    if (!(e instanceof UnsupportedError)) throw e;
    const have: string[] = [];
    for (let i = 0; i <= 5; i++) {
      try {
        if (regionInfo(dev, i).size > 0) have.push(`BAR${i}`);
      } catch { /* not described */ }
    }
    throw new VfioError(`${dev.name} has no BAR${index}`, {
      remedy: have.length ? `it has ${have.join(", ")}` : "it has no BARs",
      cause: e,
    });
  }
}

/** Reads a register of `width` bits. */
export function readRegister(bar: Region, offset: number, width: Width): bigint {
  if (width === 8) return BigInt(bar.read8(offset));
  if (width === 16) return BigInt(bar.read16(offset));
  if (width === 32) return BigInt(bar.read32(offset));
  return bar.read64(offset);
}

/** Writes a register of `width` bits. */
export function writeRegister(bar: Region, offset: number, width: Width, value: bigint): void {
  if (width === 8) bar.write8(offset, Number(value));
  else if (width === 16) bar.write16(offset, Number(value));
  else if (width === 32) bar.write32(offset, Number(value));
  else bar.write64(offset, value);
}

/** A value as `0x` + exactly width/4 hex digits (`0x010000ed`). */
export function formatValue(value: bigint, width: Width): string {
  return hex(value, width / 4);
}
