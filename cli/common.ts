/**
 * What every `vfio` command shares: the command shape, exit codes, the CLI's own errors (usage, refusal),
 * output (text or `--json`), number parsing, device arguments (addresses or `vendor:device`) and the root check.
 *
 * ```ts
 * import { resolveDevices, writeJson } from "./common.ts";
 * writeJson({ devices: resolveDevices(["0000:00:03.0", "8086:10d3"]).map((d) => d.address) });
 * ```
 * @module
 */

import type { ParseArgsConfig } from "node:util";
import { VfioError } from "../lib/errors.ts";
import { hex } from "../lib/hex.ts";
import { isPciAddress } from "../lib/pci_address.ts";
import { findPciDevices, pciDevice, type PciDeviceInfo } from "../lib/sysfs/pci.ts";
import { processPrivileges } from "../lib/sysfs/privileges.ts";

/** Exit codes of the `vfio` command. */
export const EXIT = {
  /** Done. */
  ok: 0,
  /** The operation failed (kernel, sysfs, device, permissions): the message says why. */
  failure: 1,
  /**
   * Bad command line (unknown command or option, missing or malformed argument), or bad input: a driver name or
   * driver record that fails its checks.
   */
  usage: 2,
  /** Refused to touch a device the system is using (interface up, mounted, swap); `--force` overrides. */
  refused: 3,
} as const;

/** A bad command line (exit code 2). */
export class UsageError extends VfioError {
  override name = "UsageError";
}

/** A refusal to touch a device in use (exit code 3). */
export class RefusedError extends VfioError {
  override name = "RefusedError";
}

/** The options of a command, as `node:util` `parseArgs` takes them. */
export type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parsed option values. */
export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** One `vfio` sub-command. */
export interface Command {
  /** Its name (`status`, `bind` …). */
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** Usage line(s) and option descriptions for `--help`. */
  readonly help: string;
  /** Its own options (`--help` and `--json` are added to every command). */
  readonly options: Options;
  /** Runs it; returns the exit code. */
  run(positionals: string[], values: Values): number;
}

/** Writes lines to stdout. */
export function print(...lines: string[]): void {
  process.stdout.write(lines.map((l) => `${l}\n`).join(""));
}

/** Writes a line to stderr (notes and warnings; errors go through the entry point). */
export function warn(line: string): void {
  process.stderr.write(`vfio: ${line}\n`);
}

/** Writes `value` as indented JSON; bigints become `"0x…"` strings. */
export function writeJson(value: unknown): void {
  const text = JSON.stringify(value, (_k, v) => typeof v === "bigint" ? hex(v) : v, 2);
  process.stdout.write(`${text}\n`);
}

/**
 * Parses a non-negative integer written in decimal or `0x` hex (`what` names it in the error).
 *
 * ```ts
 * import { parseNumber } from "./common.ts";
 * parseNumber("0x80", "offset"); // 128n
 * ```
 */
export function parseNumber(text: string, what: string): bigint {
  const raw = text.trim();
  // Underscores only between digits (1_000, 0xffff_0000), as in JavaScript literals.
  if (!/^(0[xX][0-9a-fA-F]+(_[0-9a-fA-F]+)*|[0-9]+(_[0-9]+)*)$/.test(raw)) {
    throw new UsageError(`invalid ${what} "${text}"`, { remedy: "write a number in decimal or 0x hex, e.g. 0x10" });
  }
  return BigInt(raw.replaceAll("_", ""));
}

/** The device arguments of a command, resolved: each is a PCI address or a `vendor:device` id. */
export function resolveDevices(args: readonly string[]): PciDeviceInfo[] {
  const out = new Map<string, PciDeviceInfo>();
  for (const arg of args) {
    if (isPciAddress(arg)) {
      const d = pciDevice(arg);
      out.set(d.address, d);
      continue;
    }
    if (!/^[0-9a-fA-F*]{1,4}:[0-9a-fA-F*]{1,4}$/.test(arg)) {
      throw new UsageError(`"${arg}" is neither a PCI address nor a vendor:device id`, {
        remedy: "write 0000:00:03.0, 00:03.0 or 8086:10d3; `vfio status` lists devices",
      });
    }
    const found = findPciDevices(arg);
    if (found.length === 0) {
      throw new VfioError(`no PCI device matches ${arg}`, { remedy: "`vfio status` lists devices with their ids" });
    }
    for (const d of found) out.set(d.address, d);
  }
  return [...out.values()];
}

/** Exactly one device from one argument (a `vendor:device` id must match one device). */
export function resolveDevice(arg: string | undefined): PciDeviceInfo {
  if (arg === undefined) throw new UsageError("missing device", { remedy: "give a PCI address or vendor:device" });
  const found = resolveDevices([arg]);
  if (found.length > 1) {
    throw new UsageError(`${arg} matches ${found.length} devices: ${found.map((d) => d.address).join(", ")}`, {
      remedy: "give the address of one",
    });
  }
  return found[0];
}

/** Refuses to go on without root (sysfs writes and module loads need it). */
export function requireRoot(what: string): void {
  if (processPrivileges().euid !== 0) {
    throw new VfioError(`${what} needs root`, { remedy: "run it as root, e.g. with sudo" });
  }
}

/** Checks the number of positional arguments. */
export function expectArgs(positionals: readonly string[], min: number, max: number, usage: string): void {
  if (positionals.length < min || positionals.length > max) {
    const what = positionals.length < min ? "missing argument" : `unexpected argument "${positionals[max]}"`;
    throw new UsageError(what, { remedy: `usage: ${usage}` });
  }
}
