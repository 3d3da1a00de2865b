/**
 * Checking driver and module names before they reach a path or `modprobe`: a name is a plain kernel name
 * (letters, digits, `_`, `-`, `.` but not first) and, where it is to be bound or loaded, one this kernel has — a
 * PCI driver under `/sys/bus/pci/drivers`, or a module listed for the running kernel.
 *
 * ```ts
 * import { checkDriverName, pciDriverSource } from "./driver_name.ts";
 * checkDriverName("e1000e"); // fine
 * console.log(pciDriverSource("e1000e")); // "loaded", or "module" when it can be loaded with modprobe
 * ```
 * @module
 */

import { lstatSync, readFileSync } from "node:fs";
import { InvalidDriverError } from "../errors.ts";
import { hostPath, type SysfsOptions } from "./attr.ts";

/** A PCI driver name as the kernel registers them (`e1000e`, `vfio-pci`, `snd_hda_intel`), at most 63 bytes. */
const DRIVER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/;
/** A module name as `modprobe` takes it (the kernel's MODULE_NAME_LEN leaves 55 characters). */
const MODULE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,54}$/;

function problemWith(name: string, pattern: RegExp, limit: number): string | null {
  if (pattern.test(name)) return null;
  if (name === "") return "it is empty";
  if (name.length > limit) return `it is longer than ${limit} characters`;
  if (name.startsWith("-")) return "it starts with '-' (it would be read as an option)";
  if (name.includes("/")) return "it contains '/'";
  if (/\s/.test(name)) return "it contains white space";
  return "only letters, digits, '_', '-' and '.' (not first) are allowed";
}

/**
 * Throws an {@linkcode InvalidDriverError} unless `name` is a plain driver name. `what` says where it came from
 * (for the message), e.g. "the --driver argument" or "the record of 0000:00:03.0".
 *
 * ```ts
 * import { checkDriverName } from "./driver_name.ts";
 * checkDriverName("vfio-pci");
 * ```
 */
export function checkDriverName(name: string, what = "the driver name"): void {
  const problem = problemWith(name, DRIVER_NAME, 63);
  if (problem !== null) throw new InvalidDriverError(name, `${what}: ${problem}`);
}

/** Whether `name` is a plain module name that `modprobe` cannot mistake for an option. */
export function isModuleName(name: string): boolean {
  return MODULE_NAME.test(name);
}

function moduleNames(options: SysfsOptions): Set<string> {
  const names = new Set<string>();
  let release: string;
  try {
    release = readFileSync(hostPath(options, "/proc/sys/kernel/osrelease"), "utf8").trim();
  } catch {
    return names;
  }
  if (!/^[A-Za-z0-9._+~-]+$/.test(release)) return names;
  for (const list of ["modules.dep", "modules.builtin"]) {
    let text = "";
    try {
      text = readFileSync(hostPath(options, `/lib/modules/${release}/${list}`), "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n")) {
      const path = line.split(":")[0].trim();
      const base = path.slice(path.lastIndexOf("/") + 1).replace(/\.ko(\.[a-z]+)?$/, "");
      if (base !== "") names.add(base.replaceAll("-", "_"));
    }
  }
  return names;
}

/**
 * Where the PCI driver `name` comes from: `"loaded"` (it is under `/sys/bus/pci/drivers`) or `"module"` (a
 * module of that name exists for the running kernel, so `modprobe` can load it).
 *
 * @throws {InvalidDriverError} a name that is not plain, or that this kernel has no driver or module for.
 *
 * ```ts
 * import { pciDriverSource } from "./driver_name.ts";
 * if (pciDriverSource("igb") === "module") console.log("modprobe igb first");
 * ```
 */
export function pciDriverSource(name: string, options: SysfsOptions = {}, what?: string): "loaded" | "module" {
  checkDriverName(name, what);
  try {
    if (lstatSync(hostPath(options, `/sys/bus/pci/drivers/${name}`)).isDirectory()) return "loaded";
  } catch {
    // not loaded
  }
  if (isModuleName(name) && moduleNames(options).has(name.replaceAll("-", "_"))) return "module";
  throw new InvalidDriverError(
    name,
    `${what ? `${what}: ` : ""}no such PCI driver is loaded and no such module exists`,
    {
      remedy: "ls /sys/bus/pci/drivers lists the loaded PCI drivers; check the spelling",
    },
  );
}
