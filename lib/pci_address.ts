/**
 * PCI addresses (`domain:bus:device.function`, the kernel's "BDF" with a segment), parsed strictly so that a typo
 * becomes an {@linkcode InvalidAddressError} that says which part is wrong, not a missing sysfs file later.
 *
 * ```ts
 * import { parsePciAddress } from "@vfio-ts/vfio/sysfs";
 * const a = parsePciAddress("00:03.0");
 * console.log(a.domain, a.bus, a.device, a.function, `${a}`); // 0 0 3 0 "0000:00:03.0"
 * ```
 * @module
 */

import { InvalidAddressError } from "./errors.ts";
import { hexDigits } from "./hex.ts";
import { hex } from "./hex.ts";

/**
 * Largest PCI domain (segment) number accepted: the kernel's domain is 32 bits wide, and Intel VMD puts its
 * devices at 0x10000 and up (printed as `10000:e1:00.0`).
 */
const MAX_DOMAIN = 0xffffffff;
/** Largest bus number. */
const MAX_BUS = 0xff;
/** Largest device (slot) number. */
const MAX_DEVICE = 0x1f;
/** Largest function number. */
const MAX_FUNCTION = 7;

/**
 * A parsed PCI address. `toString()` gives the kernel's canonical form, `0000:00:03.0` (lower-case hex), which is
 * the name of the device's directory under `/sys/bus/pci/devices`.
 */
export interface PciAddress {
  /** PCI domain (segment), 0-0xffffffff (at least 4 hex digits in text; VMD domains start at 0x10000). */
  readonly domain: number;
  /** Bus number, 0-0xff. */
  readonly bus: number;
  /** Device (slot) number, 0-0x1f. */
  readonly device: number;
  /** Function number, 0-7. */
  readonly function: number;
  /** The canonical text form `DDDD:BB:DD.F`. */
  toString(): string;
}

class ParsedPciAddress implements PciAddress {
  readonly domain: number;
  readonly bus: number;
  readonly device: number;
  readonly function: number;

  constructor(domain: number, bus: number, device: number, fn: number) {
    this.domain = domain;
    this.bus = bus;
    this.device = device;
    this.function = fn;
    Object.freeze(this);
  }

  toString(): string {
    const [domain, bus, device] = [hexDigits(this.domain, 4), hexDigits(this.bus, 2), hexDigits(this.device, 2)];
    return `${domain}:${bus}:${device}.${this.function}`;
  }
}

const HEX = /^[0-9a-fA-F]+$/;

function field(text: string, name: string, value: string, max: number): number {
  if (value === "") throw new InvalidAddressError(text, `the ${name} number is empty`);
  if (!HEX.test(value)) throw new InvalidAddressError(text, `${name} "${value}" is not hexadecimal`);
  const n = parseInt(value, 16);
  if (n > max) {
    throw new InvalidAddressError(
      text,
      `${name} ${hex(n)} is out of range (0-${hex(max)})`,
    );
  }
  return n;
}

/**
 * Parses `DDDD:BB:DD.F` (e.g. `0000:00:03.0`) or the short `BB:DD.F` (domain 0). Hex digits may be upper or lower
 * case and surrounding white space is ignored; each field is range-checked (domain ≤ 0xffffffff, bus ≤ 0xff,
 * device ≤ 0x1f, function ≤ 7). A {@linkcode PciAddress} passed in is returned as is.
 *
 * @throws {InvalidAddressError} naming the part that is wrong.
 *
 * ```ts
 * import { parsePciAddress } from "@vfio-ts/vfio/sysfs";
 * console.log(parsePciAddress("0000:00:1F.7").toString()); // "0000:00:1f.7"
 * try { parsePciAddress("00:20.0"); } catch (e) { console.log((e as Error).message); } // device 0x20 is out of range
 * ```
 */
export function parsePciAddress(text: string | PciAddress): PciAddress {
  if (typeof text !== "string") {
    if (text instanceof ParsedPciAddress) return text;
    return parsePciAddress(String(text));
  }
  const trimmed = text.trim();
  if (trimmed === "") throw new InvalidAddressError(text, "it is empty");
  const dot = trimmed.lastIndexOf(".");
  if (dot < 0) throw new InvalidAddressError(text, 'the ".F" function number is missing');
  const head = trimmed.slice(0, dot).split(":");
  const fnText = trimmed.slice(dot + 1);
  if (head.length < 2 || head.length > 3) {
    throw new InvalidAddressError(
      text,
      `expected 1 or 2 colons before the function number, found ${head.length - 1}`,
    );
  }
  const [domainText, busText, deviceText] = head.length === 3 ? head : ["0", head[0], head[1]];
  const domain = field(text, "domain", domainText, MAX_DOMAIN);
  const bus = field(text, "bus", busText, MAX_BUS);
  const device = field(text, "device", deviceText, MAX_DEVICE);
  const fn = field(text, "function", fnText, MAX_FUNCTION);
  return new ParsedPciAddress(domain, bus, device, fn);
}

/**
 * Whether `text` is a valid PCI address in either accepted form (see {@linkcode parsePciAddress}).
 *
 * ```ts
 * import { isPciAddress } from "@vfio-ts/vfio/sysfs";
 * console.log(isPciAddress("0000:00:03.0"), isPciAddress("1234:11e8")); // true false
 * ```
 */
export function isPciAddress(text: string): boolean {
  try {
    parsePciAddress(text);
    return true;
  } catch (e) {
    if (e instanceof InvalidAddressError) return false;
    throw e;
  }
}

/**
 * Builds an address from its numeric parts (range-checked like {@linkcode parsePciAddress}).
 *
 * ```ts
 * import { pciAddress } from "@vfio-ts/vfio/sysfs";
 * console.log(`${pciAddress(0, 0, 3, 0)}`); // "0000:00:03.0"
 * ```
 */
export function pciAddress(domain: number, bus: number, device: number, fn: number): PciAddress {
  const text = `${domain}:${bus}:${device}.${fn}`;
  const check = (name: string, n: number, max: number): number => {
    if (!Number.isInteger(n) || n < 0 || n > max) {
      throw new InvalidAddressError(text, `${name} ${n} is out of range (0-${hex(max)})`);
    }
    return n;
  };
  return new ParsedPciAddress(
    check("domain", domain, MAX_DOMAIN),
    check("bus", bus, MAX_BUS),
    check("device", device, MAX_DEVICE),
    check("function", fn, MAX_FUNCTION),
  );
}
