/**
 * Vendor, device and class names from the PCI ID database (`pci.ids`, Debian package `pci.ids`, the file `lspci`
 * reads). Without the file every lookup returns `null` and callers print the numeric ids.
 *
 * ```ts
 * import { loadPciIds } from "@vfio-ts/vfio/sysfs";
 * const ids = loadPciIds();
 * console.log(ids.vendorName(0x8086), ids.deviceName(0x8086, 0x10d3), ids.className(0x020000));
 * // "Intel Corporation" "82574L Gigabit Network Connection" "Ethernet controller"
 * ```
 * @module
 */

import { readFileSync } from "node:fs";
import { fsErrorCode, hostPath, type SysfsOptions } from "./attr.ts";

/** Where distributions install the database, in the order `lspci` looks. */
export const PCI_IDS_PATHS: readonly string[] = [
  "/usr/share/misc/pci.ids",
  "/usr/share/hwdata/pci.ids",
  "/usr/share/pci.ids",
];

/** Names looked up in a parsed `pci.ids`. */
export class PciIds {
  readonly #vendors = new Map<number, string>();
  readonly #devices = new Map<number, string>();
  readonly #classes = new Map<number, string>();
  /** The file the names came from, `null` when none was found. */
  readonly source: string | null;

  /**
   * Parses the text of a `pci.ids` file (`source`: its path, for messages).
   *
   * ```ts
   * import { PciIds } from "./pci_ids.ts";
   * const ids = new PciIds("8086  Intel Corporation\n\t10d3  82574L Gigabit Network Connection\n");
   * console.log(ids.deviceName(0x8086, 0x10d3));
   * ```
   */
  constructor(text: string, source: string | null = null) {
    this.source = source;
    let vendor = -1;
    let cls = -1;
    let sub = -1;
    let inClasses = false;
    for (const line of text.split("\n")) {
      if (line === "" || line.startsWith("#")) continue;
      let m: RegExpExecArray | null;
      if (!line.startsWith("\t")) {
        vendor = cls = sub = -1;
        if ((m = /^([0-9a-fA-F]{4})\s+(.+)$/.exec(line))) {
          inClasses = false;
          vendor = parseInt(m[1], 16);
          this.#vendors.set(vendor, m[2].trim());
        } else if ((m = /^C ([0-9a-fA-F]{2})\s+(.+)$/.exec(line))) {
          inClasses = true;
          cls = parseInt(m[1], 16);
          this.#classes.set(cls << 16, m[2].trim());
        } else {
          inClasses = false; // another section (device types, languages …): skip its lines
        }
      } else if (!line.startsWith("\t\t")) {
        if (inClasses && cls >= 0 && (m = /^\t([0-9a-fA-F]{2})\s+(.+)$/.exec(line))) {
          sub = parseInt(m[1], 16);
          this.#classes.set((cls << 16) | (sub << 8) | 0x100_0000, m[2].trim());
        } else if (!inClasses && vendor >= 0 && (m = /^\t([0-9a-fA-F]{4})\s+(.+)$/.exec(line))) {
          this.#devices.set(vendor * 0x10000 + parseInt(m[1], 16), m[2].trim());
        }
      } else if (inClasses && cls >= 0 && sub >= 0 && (m = /^\t\t([0-9a-fA-F]{2})\s+(.+)$/.exec(line))) {
        this.#classes.set((cls << 16) | (sub << 8) | parseInt(m[1], 16) | 0x200_0000, m[2].trim());
      }
    }
  }

  /** The vendor's name, or `null`. */
  vendorName(vendor: number): string | null {
    return this.#vendors.get(vendor) ?? null;
  }

  /** The device's name within its vendor, or `null`. */
  deviceName(vendor: number, device: number): string | null {
    return this.#devices.get(vendor * 0x10000 + device) ?? null;
  }

  /**
   * The most specific name of a 24-bit class code: the subclass (`0x020000` → "Ethernet controller"), else the
   * base class; `null` when neither is known.
   */
  className(classCode: number): string | null {
    const base = (classCode >> 16) & 0xff;
    const sub = (classCode >> 8) & 0xff;
    return this.#classes.get((base << 16) | (sub << 8) | 0x100_0000) ?? this.#classes.get(base << 16) ?? null;
  }

  /** The programming interface's name (`0x010802` → "NVM Express"), or `null`. */
  progIfName(classCode: number): string | null {
    return this.#classes.get((classCode & 0xffffff) | 0x200_0000) ?? null;
  }
}

/** Options of {@linkcode loadPciIds}. */
export interface PciIdsOptions extends SysfsOptions {
  /** Read this file instead of the standard locations. */
  path?: string;
}

/**
 * Loads the PCI ID database from the first standard location that has it (or `options.path`). A missing file
 * gives an empty database (every name `null`, `source` `null`), never an error.
 *
 * ```ts
 * import { loadPciIds } from "@vfio-ts/vfio/sysfs";
 * const ids = loadPciIds();
 * if (ids.source === null) console.log("no pci.ids: apt-get install pci.ids");
 * ```
 */
export function loadPciIds(options: PciIdsOptions = {}): PciIds {
  const paths = options.path !== undefined ? [options.path] : PCI_IDS_PATHS.map((p) => hostPath(options, p));
  for (const path of paths) {
    try {
      return new PciIds(readFileSync(path, "utf8"), path);
    } catch (e) {
      const code = fsErrorCode(e);
      if (code !== "ENOENT" && code !== "ENOTDIR" && code !== "EACCES") throw e;
    }
  }
  return new PciIds("", null);
}
