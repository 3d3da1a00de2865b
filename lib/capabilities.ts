/**
 * The PCI capability walk: the standard list from `PCI_CAPABILITY_LIST` and the PCI Express extended list from
 * offset 0x100, plus typed views of the MSI, MSI-X, PCI Express and Power Management capabilities.
 *
 * Everything here reads through a {@linkcode ConfigReader} (`size`, `read8/16/32`), so the same code runs over a
 * device's config space (`ConfigSpace`) and over plain bytes ({@linkcode configReaderFromBytes}: a sysfs `config`
 * file, a test fixture).
 *
 * Malformed lists never hang and never throw: the walk stops at the first bad link and returns what it found
 * with `malformed` set to the reason (pointer into the header, beyond config space, a loop, all-ones, too long).
 * Capability pointers have their two low bits masked off before use, as the PCI specification requires of
 * software (those bits are reserved) and as the kernel and lspci do.
 *
 * ```ts
 * import { configReaderFromBytes, findCapability, MsixCapability, walkCapabilities } from "@vfio-ts/vfio";
 * import { PCI_CAP_ID_MSIX } from "@vfio-ts/vfio/abi";
 * const cfg = configReaderFromBytes(new Uint8Array(256));
 * const { capabilities, malformed } = walkCapabilities(cfg);
 * const cap = findCapability(capabilities, PCI_CAP_ID_MSIX);
 * if (cap) console.log(new MsixCapability(cfg, cap.offset).tableSize);
 * ```
 * @module
 */

import * as pci from "./abi/pci.ts";
import {
  PCI_CAP_LIST_NEXT,
  PCI_CAPABILITY_LIST,
  PCI_CFG_SPACE_EXP_SIZE,
  PCI_CFG_SPACE_SIZE,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCAP_PAYLOAD,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_PAYLOAD,
  PCI_EXP_DEVCTL_READRQ,
  PCI_EXP_FLAGS,
  PCI_EXP_FLAGS_TYPE,
  PCI_EXP_FLAGS_VERS,
  PCI_EXP_LNKCAP,
  PCI_EXP_LNKCAP_MLW,
  PCI_EXP_LNKCAP_SLS,
  PCI_EXP_LNKCAP_SLS_16_0GB,
  PCI_EXP_LNKCAP_SLS_2_5GB,
  PCI_EXP_LNKCAP_SLS_32_0GB,
  PCI_EXP_LNKCAP_SLS_5_0GB,
  PCI_EXP_LNKCAP_SLS_64_0GB,
  PCI_EXP_LNKCAP_SLS_8_0GB,
  PCI_EXP_LNKSTA,
  PCI_EXP_LNKSTA_CLS,
  PCI_EXP_LNKSTA_NLW,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_64BIT,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_MASKBIT,
  PCI_MSI_FLAGS_QMASK,
  PCI_MSI_FLAGS_QSIZE,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_FLAGS_QSIZE,
  PCI_MSIX_PBA,
  PCI_MSIX_PBA_BIR,
  PCI_MSIX_PBA_OFFSET,
  PCI_MSIX_TABLE,
  PCI_MSIX_TABLE_BIR,
  PCI_MSIX_TABLE_OFFSET,
  PCI_PM_CAP_VER_MASK,
  PCI_PM_CTRL,
  PCI_PM_CTRL_NO_SOFT_RESET,
  PCI_PM_CTRL_STATE_MASK,
  PCI_PM_PMC,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STD_HEADER_SIZEOF,
} from "./abi/pci.ts";
import { OutOfRangeError } from "./errors.ts";
import { hex } from "./hex.ts";

/** What the walk needs of config space: its size and little-endian reads at byte offsets. */
export interface ConfigReader {
  /** Size of config space in bytes (256, or 4096 for PCI Express). */
  readonly size: number;
  /** Reads a byte. */
  read8(offset: number): number;
  /** Reads a 16-bit little-endian value (2-byte aligned). */
  read16(offset: number): number;
  /** Reads a 32-bit little-endian value (4-byte aligned). */
  read32(offset: number): number;
}

/** One entry of a capability list. */
export interface Capability {
  /** `PCI_CAP_ID_*` for a standard capability, `PCI_EXT_CAP_ID_*` for an extended one. */
  readonly id: number;
  /** The kernel's name: the suffix of its `PCI_CAP_ID_` / `PCI_EXT_CAP_ID_` constant (`"MSIX"`, `"EXP"`, `"ERR"`). */
  readonly name: string;
  /** Offset of the capability in config space. */
  readonly offset: number;
  /** Whether it is from the extended (PCI Express, ≥ 0x100) list. */
  readonly extended: boolean;
  /** The extended capability's version (bits 16-19 of its header); 0 for standard capabilities. */
  readonly version: number;
}

/** The result of {@linkcode walkCapabilities}. */
export interface CapabilityList {
  /** Every capability found, standard ones first, each list in link order. */
  readonly capabilities: readonly Capability[];
  /** `null` when both lists ended properly; otherwise why the walk stopped early (what was found is kept). */
  readonly malformed: string | null;
}

function namesOf(prefix: string): ReadonlyMap<number, string> {
  const names = new Map<number, string>();
  for (const [key, value] of Object.entries(pci)) {
    if (key.startsWith(prefix) && key !== `${prefix}MAX` && typeof value === "number" && !names.has(value)) {
      names.set(value, key.slice(prefix.length));
    }
  }
  return names;
}

const STANDARD_NAMES = namesOf("PCI_CAP_ID_");
const EXTENDED_NAMES = namesOf("PCI_EXT_CAP_ID_");
const PORT_TYPE_NAMES = namesOf("PCI_EXP_TYPE_");

/**
 * The kernel's name of a capability id (`0x11` → `"MSIX"`; extended `0x01` → `"ERR"`), or `"unknown 0x.."`.
 *
 * ```ts
 * import { capabilityName } from "@vfio-ts/vfio";
 * capabilityName(0x10, false); // "EXP"
 * capabilityName(0x10, true); // "SRIOV"
 * ```
 */
export function capabilityName(id: number, extended: boolean): string {
  return (extended ? EXTENDED_NAMES : STANDARD_NAMES).get(id) ?? `unknown ${hex(id)}`;
}

/** Most standard capabilities that fit between the header and 0x100, 4 bytes each (the kernel's TTL is 48). */
const MAX_STANDARD = (PCI_CFG_SPACE_SIZE - PCI_STD_HEADER_SIZEOF) / 4;
/** Most extended capabilities that fit between 0x100 and 0x1000, 8 bytes each (the kernel's TTL is 480). */
const MAX_EXTENDED = (PCI_CFG_SPACE_EXP_SIZE - PCI_CFG_SPACE_SIZE) / 8;

/**
 * Walks both capability lists. Never throws for a bad list (reads that the reader refuses do throw) and never
 * loops: each offset is visited once, and each list is bounded by what fits in its part of config space.
 *
 * ```ts
 * import { configReaderFromBytes, walkCapabilities } from "@vfio-ts/vfio";
 * const { capabilities, malformed } = walkCapabilities(configReaderFromBytes(new Uint8Array(256)));
 * for (const c of capabilities) console.log(c.name, c.offset.toString(16));
 * if (malformed) console.warn(`capability list: ${malformed}`);
 * ```
 */
export function walkCapabilities(cfg: ConfigReader): CapabilityList {
  const capabilities: Capability[] = [];
  const malformed = walkStandard(cfg, capabilities) ?? walkExtended(cfg, capabilities);
  return { capabilities, malformed };
}

function walkStandard(cfg: ConfigReader, out: Capability[]): string | null {
  if (cfg.size < PCI_STD_HEADER_SIZEOF || (cfg.read16(PCI_STATUS) & PCI_STATUS_CAP_LIST) === 0) return null;
  const seen = new Set<number>();
  let from = PCI_CAPABILITY_LIST;
  let at = cfg.read8(PCI_CAPABILITY_LIST) & ~3;
  while (at !== 0) {
    const link = `the capability pointer at ${hex(from)} (${hex(at)})`;
    if (at < PCI_STD_HEADER_SIZEOF) return `${link} points into the standard header (below 0x40)`;
    if (at + 2 > cfg.size) return `${link} points beyond the ${hex(cfg.size)} bytes of config space`;
    if (seen.has(at)) return `${link} loops back to a capability already listed`;
    if (seen.size >= MAX_STANDARD) return `more than ${MAX_STANDARD} standard capabilities`;
    seen.add(at);
    const id = cfg.read8(at);
    if (id === 0xff) return `the capability at ${hex(at)} reads 0xff (device gone, or ${link} is wrong)`;
    out.push({ id, name: capabilityName(id, false), offset: at, extended: false, version: 0 });
    from = at + PCI_CAP_LIST_NEXT;
    at = cfg.read8(from) & ~3;
  }
  return null;
}

function walkExtended(cfg: ConfigReader, out: Capability[]): string | null {
  if (cfg.size < PCI_CFG_SPACE_EXP_SIZE) return null;
  const seen = new Set<number>();
  let at = PCI_CFG_SPACE_SIZE;
  for (;;) {
    seen.add(at);
    const header = cfg.read32(at);
    // No extended capabilities at all: the kernel treats a 0 or all-ones first header the same way.
    if (header === 0) return null;
    if (header === 0xffffffff) {
      return at === PCI_CFG_SPACE_SIZE ? null : `the extended capability at ${hex(at)} reads 0xffffffff`;
    }
    // Header layout (PCI_EXT_CAP_ID/VER/NEXT): id in bits 0-15, version in 16-19, next offset in 20-31.
    const id = header & 0xffff;
    const version = (header >>> 16) & 0xf;
    const next = (header >>> 20) & 0xffc;
    // An id of 0 is a placeholder (vfio-pci hides a first capability that way): skip it, follow its link.
    if (id !== 0) out.push({ id, name: capabilityName(id, true), offset: at, extended: true, version });
    if (next === 0) return null;
    const link = `the next pointer of the extended capability at ${hex(at)} (${hex(next)})`;
    if (next < PCI_CFG_SPACE_SIZE) return `${link} points below 0x100`;
    if (next + 4 > cfg.size) return `${link} points beyond the ${hex(cfg.size)} bytes of config space`;
    if (seen.has(next)) return `${link} loops back to a capability already listed`;
    if (seen.size >= MAX_EXTENDED) return `more than ${MAX_EXTENDED} extended capabilities`;
    at = next;
  }
}

/**
 * The first capability with this id, standard (default) or extended.
 *
 * ```ts
 * import { configReaderFromBytes, findCapability, walkCapabilities } from "@vfio-ts/vfio";
 * import { PCI_CAP_ID_EXP } from "@vfio-ts/vfio/abi";
 * const { capabilities } = walkCapabilities(configReaderFromBytes(new Uint8Array(256)));
 * const exp = findCapability(capabilities, PCI_CAP_ID_EXP); // undefined: no capabilities
 * ```
 */
export function findCapability(
  capabilities: readonly Capability[],
  id: number,
  extended = false,
): Capability | undefined {
  return capabilities.find((c) => c.id === id && c.extended === extended);
}

/**
 * A {@linkcode ConfigReader} over plain bytes (a sysfs `config` file, a test fixture); reads outside the bytes or
 * misaligned throw an `OutOfRangeError`.
 *
 * ```ts
 * import { configReaderFromBytes } from "@vfio-ts/vfio";
 * const cfg = configReaderFromBytes(new Uint8Array([0x34, 0x12, 0xe8, 0x11]));
 * cfg.read16(0).toString(16); // "1234"
 * ```
 */
export function configReaderFromBytes(bytes: Uint8Array): ConfigReader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const check = (offset: number, width: number): void => {
    if (!Number.isInteger(offset) || offset < 0 || offset + width > bytes.byteLength) {
      throw new OutOfRangeError(`config read of ${width} bytes at ${offset}: beyond the ${bytes.byteLength} bytes`);
    }
    if (offset % width !== 0) {
      throw new OutOfRangeError(
        `config read at ${hex(offset)}: misaligned: ${width * 8}-bit access must be ${width}-byte aligned`,
      );
    }
  };
  return {
    size: bytes.byteLength,
    read8: (o) => (check(o, 1), view.getUint8(o)),
    read16: (o) => (check(o, 2), view.getUint16(o, true)),
    read32: (o) => (check(o, 4), view.getUint32(o, true)),
  };
}

/** The value of the bits of `mask` in `value`, shifted down (the mask's lowest set bit becomes bit 0). */
function field(value: number, mask: number): number {
  return ((value & mask) >>> 0) / (mask & -mask);
}

/**
 * A capability structure in config space at `offset`, read live: what {@linkcode MsiCapability},
 * {@linkcode MsixCapability}, {@linkcode PciExpressCapability} and {@linkcode PowerManagementCapability} are
 * built on.
 *
 * ```ts
 * import { type CapabilityView, MsiCapability, type ConfigReader } from "@vfio-ts/vfio";
 * declare const cfg: ConfigReader;
 * const cap: CapabilityView = new MsiCapability(cfg, 0x50);
 * console.log(cap.offset);
 * ```
 */
export abstract class CapabilityView {
  /** The config space it reads. */
  protected readonly cfg: ConfigReader;
  /** Offset of the capability in config space. */
  readonly offset: number;
  /** Views the capability at `offset`. */
  constructor(cfg: ConfigReader, offset: number) {
    this.cfg = cfg;
    this.offset = offset;
  }
  /** The 16-bit register `at` bytes into the capability. */
  protected read16(at: number): number {
    return this.cfg.read16(this.offset + at);
  }
  /** The 32-bit register `at` bytes into the capability. */
  protected read32(at: number): number {
    return this.cfg.read32(this.offset + at);
  }
}

/**
 * A live, read-only view of an MSI capability (each getter reads config space). The enable bits are virtualised
 * by vfio-pci: turn interrupts on with VFIO_DEVICE_SET_IRQS, not by writing them.
 *
 * ```ts
 * import { MsiCapability, type ConfigReader } from "@vfio-ts/vfio";
 * declare const cfg: ConfigReader;
 * const msi = new MsiCapability(cfg, 0x50);
 * console.log(msi.multipleMessageCapable, msi.is64Bit, msi.perVectorMasking);
 * ```
 */
export class MsiCapability extends CapabilityView {
  /** The message control register. */
  get control(): number {
    return this.read16(PCI_MSI_FLAGS);
  }
  /** MSI enabled. */
  get enabled(): boolean {
    return (this.control & PCI_MSI_FLAGS_ENABLE) !== 0;
  }
  /** How many vectors the function can use (1, 2, 4 … 32). */
  get multipleMessageCapable(): number {
    return 1 << field(this.control, PCI_MSI_FLAGS_QMASK);
  }
  /** How many vectors are enabled (1, 2, 4 … 32). */
  get multipleMessageEnable(): number {
    return 1 << field(this.control, PCI_MSI_FLAGS_QSIZE);
  }
  /** The function can generate 64-bit message addresses. */
  get is64Bit(): boolean {
    return (this.control & PCI_MSI_FLAGS_64BIT) !== 0;
  }
  /** The function has per-vector mask bits. */
  get perVectorMasking(): boolean {
    return (this.control & PCI_MSI_FLAGS_MASKBIT) !== 0;
  }
}

/**
 * A live, read-only view of an MSI-X capability: vector count, where the table and the PBA live.
 *
 * ```ts
 * import { MsixCapability, type ConfigReader } from "@vfio-ts/vfio";
 * declare const cfg: ConfigReader;
 * const msix = new MsixCapability(cfg, 0x70);
 * console.log(`${msix.tableSize} vectors, table in BAR${msix.tableBir} at 0x${msix.tableOffset.toString(16)}`);
 * ```
 */
export class MsixCapability extends CapabilityView {
  /** The message control register. */
  get control(): number {
    return this.read16(PCI_MSIX_FLAGS);
  }
  /** Number of table entries, i.e. of vectors. */
  get tableSize(): number {
    return (this.control & PCI_MSIX_FLAGS_QSIZE) + 1;
  }
  /** MSI-X enabled. */
  get enabled(): boolean {
    return (this.control & PCI_MSIX_FLAGS_ENABLE) !== 0;
  }
  /** All vectors masked (function mask). */
  get functionMasked(): boolean {
    return (this.control & PCI_MSIX_FLAGS_MASKALL) !== 0;
  }
  /** The BAR (BIR) that holds the vector table. */
  get tableBir(): number {
    return this.read32(PCI_MSIX_TABLE) & PCI_MSIX_TABLE_BIR;
  }
  /** Offset of the vector table within its BAR. */
  get tableOffset(): number {
    return (this.read32(PCI_MSIX_TABLE) & PCI_MSIX_TABLE_OFFSET) >>> 0;
  }
  /** The BAR (BIR) that holds the pending-bit array. */
  get pbaBir(): number {
    return this.read32(PCI_MSIX_PBA) & PCI_MSIX_PBA_BIR;
  }
  /** Offset of the pending-bit array within its BAR. */
  get pbaOffset(): number {
    return (this.read32(PCI_MSIX_PBA) & PCI_MSIX_PBA_OFFSET) >>> 0;
  }
}

const LINK_SPEEDS: ReadonlyMap<number, number> = new Map([
  [PCI_EXP_LNKCAP_SLS_2_5GB, 2.5],
  [PCI_EXP_LNKCAP_SLS_5_0GB, 5],
  [PCI_EXP_LNKCAP_SLS_8_0GB, 8],
  [PCI_EXP_LNKCAP_SLS_16_0GB, 16],
  [PCI_EXP_LNKCAP_SLS_32_0GB, 32],
  [PCI_EXP_LNKCAP_SLS_64_0GB, 64],
]);

/**
 * A live, read-only view of a PCI Express capability: port type, version, payload sizes, link speed and width.
 * Link speeds are in GT/s (0 when the code is not one the kernel knows, e.g. an integrated endpoint with no link).
 *
 * ```ts
 * import { PciExpressCapability, type ConfigReader } from "@vfio-ts/vfio";
 * declare const cfg: ConfigReader;
 * const exp = new PciExpressCapability(cfg, 0x80);
 * console.log(exp.typeName, `x${exp.linkWidth} @ ${exp.linkSpeed} GT/s`, exp.maxPayload);
 * ```
 */
export class PciExpressCapability extends CapabilityView {
  /** The PCI Express capabilities register. */
  get flags(): number {
    return this.read16(PCI_EXP_FLAGS);
  }
  /** Capability version (1 or 2). */
  get version(): number {
    return this.flags & PCI_EXP_FLAGS_VERS;
  }
  /** Device/port type (`PCI_EXP_TYPE_*`). */
  get type(): number {
    return field(this.flags, PCI_EXP_FLAGS_TYPE);
  }
  /** The kernel's name of the type: `"ENDPOINT"`, `"LEG_END"`, `"RC_END"`, `"ROOT_PORT"` … */
  get typeName(): string {
    return PORT_TYPE_NAMES.get(this.type) ?? `unknown ${hex(this.type)}`;
  }
  /** Max payload size supported, in bytes. */
  get maxPayloadSupported(): number {
    return 128 << field(this.read32(PCI_EXP_DEVCAP), PCI_EXP_DEVCAP_PAYLOAD);
  }
  /** Function-level reset supported. */
  get flr(): boolean {
    return (this.read32(PCI_EXP_DEVCAP) & PCI_EXP_DEVCAP_FLR) !== 0;
  }
  /** Max payload size currently set, in bytes. */
  get maxPayload(): number {
    return 128 << field(this.read16(PCI_EXP_DEVCTL), PCI_EXP_DEVCTL_PAYLOAD);
  }
  /** Max read request size currently set, in bytes. */
  get maxReadRequest(): number {
    return 128 << field(this.read16(PCI_EXP_DEVCTL), PCI_EXP_DEVCTL_READRQ);
  }
  /** Max link speed in GT/s (link capabilities). */
  get maxLinkSpeed(): number {
    return LINK_SPEEDS.get(this.read32(PCI_EXP_LNKCAP) & PCI_EXP_LNKCAP_SLS) ?? 0;
  }
  /** Max link width in lanes (link capabilities). */
  get maxLinkWidth(): number {
    return field(this.read32(PCI_EXP_LNKCAP), PCI_EXP_LNKCAP_MLW);
  }
  /** Current link speed in GT/s (link status). */
  get linkSpeed(): number {
    return LINK_SPEEDS.get(this.read16(PCI_EXP_LNKSTA) & PCI_EXP_LNKSTA_CLS) ?? 0;
  }
  /** Negotiated link width in lanes (link status). */
  get linkWidth(): number {
    return field(this.read16(PCI_EXP_LNKSTA), PCI_EXP_LNKSTA_NLW);
  }
}

/**
 * A live, read-only view of a Power Management capability: PM version and the current D-state.
 *
 * ```ts
 * import { PowerManagementCapability, type ConfigReader } from "@vfio-ts/vfio";
 * declare const cfg: ConfigReader;
 * const pm = new PowerManagementCapability(cfg, 0x40);
 * console.log(pm.version, pm.powerStateName); // 3 "D0"
 * ```
 */
export class PowerManagementCapability extends CapabilityView {
  /** Version of the PM specification the function complies with. */
  get version(): number {
    return this.read16(PCI_PM_PMC) & PCI_PM_CAP_VER_MASK;
  }
  /** Current power state: 0 = D0, 1 = D1, 2 = D2, 3 = D3hot. */
  get powerState(): number {
    return this.read16(PCI_PM_CTRL) & PCI_PM_CTRL_STATE_MASK;
  }
  /** `"D0"`, `"D1"`, `"D2"` or `"D3hot"`. */
  get powerStateName(): string {
    const state = this.powerState;
    return state === 3 ? "D3hot" : `D${state}`;
  }
  /** The function keeps its state across D3hot → D0 (No_Soft_Reset). */
  get noSoftReset(): boolean {
    return (this.read16(PCI_PM_CTRL) & PCI_PM_CTRL_NO_SOFT_RESET) !== 0;
  }
}
