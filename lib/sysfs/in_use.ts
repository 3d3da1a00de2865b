/**
 * Whether the system is using a PCI device through its kernel driver: a network interface that is up, a block
 * device (or partition) that is mounted, holds swap or is held by device-mapper/md. Taking such a device away
 * from its driver (to bind it to vfio-pci) cuts a live connection or yanks a file system, so callers refuse
 * unless told otherwise.
 *
 * ```ts
 * import { deviceUsers } from "@vfio-ts/vfio/sysfs";
 * for (const u of deviceUsers("0000:00:05.0")) console.log(u.description); // "network interface ens5 is up"
 * ```
 * @module
 */

import { readdirSync, readFileSync, realpathSync } from "node:fs";
import { basename, join } from "node:path";
import { IFF_UP } from "../abi/if.ts";
import type { PciAddress } from "../pci_address.ts";
import { hostPath, readAttr, readNumber, type SysfsOptions } from "./attr.ts";
import { pciDevice } from "./pci.ts";

/** One way the system is using a device. */
export interface DeviceUse {
  /** What kind of use. */
  readonly kind: "interface-up" | "mounted" | "swap" | "held";
  /** The interface or block device name (`ens5`, `nvme0n1p1`). */
  readonly name: string;
  /** One phrase for people: "network interface ens5 is up", "nvme0n1p1 is mounted on /data". */
  readonly description: string;
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function real(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

/**
 * The network interfaces of a device (`/sys/bus/pci/devices/<address>/net/*`).
 *
 * ```ts
 * import { networkInterfaces } from "@vfio-ts/vfio/sysfs";
 * console.log(networkInterfaces("0000:00:05.0")); // ["ens5"]
 * ```
 */
export function networkInterfaces(address: string | PciAddress, options: SysfsOptions = {}): string[] {
  return list(join(pciDevice(address, options).sysfsPath, "net"));
}

/**
 * The block devices and partitions below a device (an NVMe controller's namespaces and their partitions, a SATA
 * controller's disks): the entries of `/sys/class/block` whose sysfs directory lies under the device's.
 *
 * ```ts
 * import { blockDevices } from "@vfio-ts/vfio/sysfs";
 * console.log(blockDevices("0000:00:04.0")); // ["nvme0n1", "nvme0n1p1"]
 * ```
 */
export function blockDevices(address: string | PciAddress, options: SysfsOptions = {}): string[] {
  const dir = real(pciDevice(address, options).sysfsPath);
  if (dir === null) return [];
  const classDir = hostPath(options, "/sys/class/block");
  return list(classDir).filter((name) => real(join(classDir, name))?.startsWith(`${dir}/`) === true);
}

/** Undoes the octal escapes of /proc/mounts and /proc/swaps (`\040` is a space). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The kernel name of a block device path (`/dev/disk/by-uuid/…` → `nvme0n1p1`), or `null` if not under /dev. */
function blockName(source: string, options: SysfsOptions): string | null {
  if (!source.startsWith("/dev/")) return null;
  return basename(real(hostPath(options, source)) ?? source);
}

/**
 * Every way the system uses the device through its current driver; empty when it is safe to take it away.
 * Devices on vfio-pci report nothing here (see `vfioHolders` for processes holding them through VFIO).
 *
 * ```ts
 * import { deviceUsers } from "@vfio-ts/vfio/sysfs";
 * const uses = deviceUsers("0000:00:04.0");
 * if (uses.length > 0) throw new Error(`in use: ${uses.map((u) => u.description).join("; ")}`);
 * ```
 */
export function deviceUsers(address: string | PciAddress, options: SysfsOptions = {}): DeviceUse[] {
  const out: DeviceUse[] = [];
  for (const name of networkInterfaces(address, options)) {
    const dir = hostPath(options, `/sys/class/net/${name}`);
    const flags = readNumber(join(dir, "flags")) ?? 0;
    const state = readAttr(join(dir, "operstate"))?.trim();
    if ((flags & IFF_UP) !== 0 || state === "up") {
      out.push({ kind: "interface-up", name, description: `network interface ${name} is up` });
    }
  }
  const blocks = new Set(blockDevices(address, options));
  if (blocks.size === 0) return out;
  const read = (path: string): string => {
    try {
      return readFileSync(hostPath(options, path), "utf8");
    } catch {
      return "";
    }
  };
  for (const line of read("/proc/mounts").split("\n")) {
    const [source, target] = line.split(" ");
    const name = source ? blockName(unescape(source), options) : null;
    if (name !== null && blocks.has(name)) {
      out.push({ kind: "mounted", name, description: `${name} is mounted on ${unescape(target ?? "?")}` });
    }
  }
  for (const line of read("/proc/swaps").split("\n").slice(1)) {
    const file = line.split(/\s+/)[0];
    const name = file ? blockName(unescape(file), options) : null;
    if (name !== null && blocks.has(name)) out.push({ kind: "swap", name, description: `${name} holds swap` });
  }
  for (const name of blocks) {
    const holders = list(hostPath(options, `/sys/class/block/${name}/holders`));
    if (holders.length > 0) {
      out.push({ kind: "held", name, description: `${name} is held by ${holders.join(", ")} (device-mapper/md)` });
    }
  }
  return out;
}
