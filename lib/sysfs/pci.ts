/**
 * PCI device discovery from `/sys/bus/pci/devices`: ids, class, driver, IOMMU group, resources (BARs), the VFIO
 * device cdev. Pure file reads; no device is opened.
 *
 * ```ts
 * import { findPciDevices, pciDevice } from "@vfio-ts/vfio/sysfs";
 * const [edu] = findPciDevices("1234:11e8");
 * const info = pciDevice(edu.address);
 * console.log(info.driver, info.iommuGroup, info.bars.map((b) => `BAR${b.index} ${b.size} bytes`));
 * ```
 * @module
 */

import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import {
  IORESOURCE_IO,
  IORESOURCE_MEM,
  IORESOURCE_MEM_64,
  IORESOURCE_PREFETCH,
  IORESOURCE_READONLY,
} from "../abi/ioport.ts";
import { InvalidAddressError, VfioError } from "../errors.ts";
import { parsePciAddress, type PciAddress } from "../pci_address.ts";
import { hostPath, readAttr, readLinkName, readNumber, type SysfsOptions } from "./attr.ts";

/** Index of the expansion ROM line in a device's `resource` file (after the six BARs). */
const ROM_RESOURCE_INDEX = 6;
/** Number of standard BARs. */
const STD_BARS = 6;

/** One line of a device's `resource` file: a BAR, the ROM, an SR-IOV BAR or a bridge window. */
export interface PciResource {
  /** Line number: 0-5 are BAR0-BAR5, 6 the expansion ROM, 7-12 the SR-IOV VF BARs, later ones bridge windows. */
  readonly index: number;
  /** First bus address. */
  readonly start: bigint;
  /** Last bus address (inclusive). */
  readonly end: bigint;
  /** The kernel's `IORESOURCE_*` flag bits. */
  readonly flags: number;
  /** Size in bytes (0 when the resource is unused). */
  readonly size: bigint;
  /** Address space: memory, I/O ports, or none (unused). */
  readonly kind: "memory" | "io" | "none";
  /** A 64-bit memory BAR (it takes two BAR registers). */
  readonly is64Bit: boolean;
  /** Prefetchable memory. */
  readonly prefetchable: boolean;
  /** Read-only (the expansion ROM). */
  readonly readOnly: boolean;
}

/** What sysfs says about one PCI device. */
export interface PciDeviceInfo {
  /** Canonical address, `0000:00:03.0`. */
  readonly address: string;
  /** Vendor id, e.g. 0x1234. */
  readonly vendor: number;
  /** Device id, e.g. 0x11e8. */
  readonly device: number;
  /** Subsystem vendor id. */
  readonly subsystemVendor: number;
  /** Subsystem device id. */
  readonly subsystemDevice: number;
  /** 24-bit class code: base class, subclass, programming interface (NVMe: 0x010802). */
  readonly class: number;
  /** Revision id. */
  readonly revision: number;
  /** Bound driver's name (`vfio-pci`, `e1000e` …) or `null`. */
  readonly driver: string | null;
  /** The `driver_override` setting, or `null` when unset. */
  readonly driverOverride: string | null;
  /** IOMMU group number (also set for no-IOMMU groups once bound to vfio-pci), or `null`. */
  readonly iommuGroup: number | null;
  /** NUMA node, or `null` when the platform does not say. */
  readonly numaNode: number | null;
  /** Every line of the `resource` file. */
  readonly resources: readonly PciResource[];
  /** The BARs in use (indexes 0-5 with a non-zero size). */
  readonly bars: readonly PciResource[];
  /** The legacy IRQ line number the kernel assigned (0 when none). */
  readonly irq: number | null;
  /**
   * The VFIO device's name in sysfs (`vfio-dev/vfio0`) while bound to vfio-pci, or `null`. No-IOMMU devices have
   * one too, but (up to at least Linux 6.12) no `/dev` node: see {@linkcode PciDeviceInfo.vfioDevicePath}.
   */
  readonly vfioDevice: string | null;
  /** The VFIO device cdev (`/dev/vfio/devices/vfio0`) when it exists, for the iommufd path; else `null`. */
  readonly vfioDevicePath: string | null;
  /** Whether the device is enabled (the `enable` attribute), `null` when unknown. */
  readonly enabled: boolean | null;
  /** The device's sysfs directory. */
  readonly sysfsPath: string;
}

/**
 * The sysfs directory of a device, `/sys/bus/pci/devices/<address>`.
 *
 * ```ts
 * import { pciDevicePath } from "./pci.ts";
 * console.log(pciDevicePath("00:03.0")); // "/sys/bus/pci/devices/0000:00:03.0"
 * ```
 */
export function pciDevicePath(address: string | PciAddress, options: SysfsOptions = {}): string {
  return hostPath(options, `/sys/bus/pci/devices/${parsePciAddress(address)}`);
}

/**
 * Parses the text of a `resource` file (three hex numbers per line: start, end, flags).
 *
 * ```ts
 * import { parseResources } from "./pci.ts";
 * const [bar0] = parseResources("0x00000000fea00000 0x00000000feafffff 0x0000000000040200\n");
 * console.log(bar0.kind, bar0.size); // "memory" 1048576n
 * ```
 */
export function parseResources(text: string): PciResource[] {
  const out: PciResource[] = [];
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  lines.forEach((line, index) => {
    const parts = line.trim().split(/\s+/);
    // the kernel writes three 0x-prefixed hex numbers; anything else (a fake or damaged tree) is no resource
    if (parts.length < 3 || !parts.slice(0, 3).every((p) => /^0x[0-9a-f]+$/i.test(p))) return;
    const start = BigInt(parts[0]);
    const end = BigInt(parts[1]);
    const flags = Number(BigInt(parts[2]) & 0xffffffffn);
    const used = flags !== 0 && end >= start && !(start === 0n && end === 0n);
    const kind = !used ? "none" : flags & IORESOURCE_IO ? "io" : flags & IORESOURCE_MEM ? "memory" : "none";
    out.push({
      index,
      start,
      end,
      flags,
      size: used ? end - start + 1n : 0n,
      kind,
      is64Bit: kind === "memory" && (flags & IORESOURCE_MEM_64) !== 0,
      prefetchable: kind === "memory" && (flags & IORESOURCE_PREFETCH) !== 0,
      readOnly: (flags & IORESOURCE_READONLY) !== 0 || index === ROM_RESOURCE_INDEX,
    });
  });
  return out;
}

function vfioDeviceName(dir: string): string | null {
  try {
    const names = readdirSync(join(dir, "vfio-dev")).filter((n) => /^vfio\d+$/.test(n));
    return names.length > 0 ? names[0] : null;
  } catch {
    return null;
  }
}

function readDevice(address: string, dir: string, options: SysfsOptions): PciDeviceInfo {
  const num = (name: string): number | null => readNumber(join(dir, name));
  const override = readAttr(join(dir, "driver_override"));
  const group = readLinkName(join(dir, "iommu_group"));
  const numa = num("numa_node");
  const enable = readAttr(join(dir, "enable"));
  const resources = parseResources(readAttr(join(dir, "resource")) ?? "");
  const vfioDevice = vfioDeviceName(dir);
  const cdev = vfioDevice === null ? null : `/dev/vfio/devices/${vfioDevice}`;
  return {
    address,
    vendor: num("vendor") ?? 0xffff,
    device: num("device") ?? 0xffff,
    subsystemVendor: num("subsystem_vendor") ?? 0,
    subsystemDevice: num("subsystem_device") ?? 0,
    class: num("class") ?? 0,
    revision: num("revision") ?? 0,
    driver: readLinkName(join(dir, "driver")),
    driverOverride: override === null || override === "(null)" || override === "" ? null : override,
    iommuGroup: group !== null && /^\d+$/.test(group) ? Number(group) : null,
    numaNode: numa === null || numa < 0 ? null : numa,
    resources,
    bars: resources.filter((r) => r.index < STD_BARS && r.size > 0n),
    irq: num("irq"),
    vfioDevice,
    vfioDevicePath: cdev !== null && existsSync(hostPath(options, cdev)) ? cdev : null,
    enabled: enable === null ? null : enable.trim() !== "0",
    sysfsPath: dir,
  };
}

/**
 * Reads one device's sysfs information.
 *
 * @throws {InvalidAddressError} when the address does not parse or no such device exists.
 *
 * ```ts
 * import { pciDevice } from "@vfio-ts/vfio/sysfs";
 * const info = pciDevice("0000:00:03.0");
 * console.log(info.vendor.toString(16), info.driver, info.iommuGroup);
 * ```
 */
export function pciDevice(address: string | PciAddress, options: SysfsOptions = {}): PciDeviceInfo {
  const canonical = parsePciAddress(address).toString();
  const dir = pciDevicePath(canonical, options);
  if (!existsSync(dir)) {
    throw new InvalidAddressError(String(address), `no PCI device ${canonical} on this machine`, {
      remedy: "`vfio status` lists them",
    });
  }
  return readDevice(canonical, dir, options);
}

/**
 * Lists every PCI device, sorted by address.
 *
 * ```ts
 * import { listPciDevices } from "@vfio-ts/vfio/sysfs";
 * for (const d of listPciDevices()) console.log(d.address, d.vendor.toString(16), d.device.toString(16), d.driver);
 * ```
 */
export function listPciDevices(options: SysfsOptions = {}): PciDeviceInfo[] {
  const base = hostPath(options, "/sys/bus/pci/devices");
  let names: string[];
  try {
    names = readdirSync(base);
  } catch {
    return [];
  }
  const found: { name: string; address: PciAddress }[] = [];
  for (const name of names) {
    try {
      found.push({ name, address: parsePciAddress(name) });
    } catch { /* not a PCI address: nothing the kernel puts here */ }
  }
  // By number, not by text: a 5-digit VMD domain (10000:…) sorts after ffff:…
  const key = (a: PciAddress): number => a.domain * 0x10000 + a.bus * 0x100 + a.device * 8 + a.function;
  found.sort((x, y) => key(x.address) - key(y.address));
  const out: PciDeviceInfo[] = [];
  for (const { name, address } of found) {
    const dir = join(base, name);
    if (existsSync(dir)) out.push(readDevice(address.toString(), dir, options)); // skip devices removed while listing
  }
  return out;
}

/** What {@linkcode findPciDevices} matches on; every given field must match. */
export interface PciMatch {
  /** Vendor id. */
  vendor?: number;
  /** Device id. */
  device?: number;
  /** Class code, compared under `classMask`. */
  class?: number;
  /** Which class bits to compare (default 0xffffff: all; 0xff0000: base class only; 0xffff00: ignore prog-if). */
  classMask?: number;
}

/**
 * Parses a `vendor:device` id pair as `lspci -n` prints it (`1234:11e8`; either half may be `*`).
 *
 * ```ts
 * import { parsePciId } from "@vfio-ts/vfio/sysfs";
 * console.log(parsePciId("8086:*")); // { vendor: 0x8086 }
 * ```
 */
export function parsePciId(text: string): PciMatch {
  const m = /^\s*([0-9a-fA-F]{1,4}|\*):([0-9a-fA-F]{1,4}|\*)\s*$/.exec(text);
  if (!m) {
    throw new VfioError(`invalid PCI id "${text}": expected a vendor:device pair such as 1234:11e8`, {
      remedy: "`lspci -nn` shows the ids in brackets",
    });
  }
  const match: PciMatch = {};
  if (m[1] !== "*") match.vendor = parseInt(m[1], 16);
  if (m[2] !== "*") match.device = parseInt(m[2], 16);
  return match;
}

/**
 * Finds devices by `vendor:device` text or by a {@linkcode PciMatch}.
 *
 * ```ts
 * import { findPciDevices } from "@vfio-ts/vfio/sysfs";
 * const nvmes = findPciDevices({ class: 0x010802 });
 * const nics = findPciDevices({ class: 0x020000, classMask: 0xff0000 });
 * const edus = findPciDevices("1234:11e8");
 * ```
 */
export function findPciDevices(match: PciMatch | string, options: SysfsOptions = {}): PciDeviceInfo[] {
  const m = typeof match === "string" ? parsePciId(match) : match;
  const mask = m.classMask ?? 0xffffff;
  return listPciDevices(options).filter((d) =>
    (m.vendor === undefined || d.vendor === m.vendor) &&
    (m.device === undefined || d.device === m.device) &&
    (m.class === undefined || (d.class & mask) === (m.class & mask))
  );
}
