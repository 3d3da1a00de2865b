/**
 * Reading and writing sysfs/procfs attributes, under a relocatable root so that the parsers can be tested on a
 * fake tree. Write failures become {@linkcode VfioError}s that name the file and say what to do.
 *
 * ```ts
 * import { hostPath, readAttr } from "./attr.ts";
 * console.log(readAttr(hostPath({}, "/sys/bus/pci/devices/0000:00:03.0/vendor"))); // "0x1234" or null
 * ```
 * @module
 */

import { readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { VfioError } from "../errors.ts";

/** Where to find the kernel's file systems; every sysfs function takes it. */
export interface SysfsOptions {
  /**
   * The directory under which `/sys`, `/proc`, `/dev` and `/run` are looked up (default `/`). Tests point it at
   * a fake tree; everything else should leave it alone.
   */
  root?: string;
}

/**
 * The path of `absolute` (e.g. `/sys/bus/pci/devices`) under the configured root.
 *
 * ```ts
 * import { hostPath } from "./attr.ts";
 * console.log(hostPath({ root: "/tmp/fake" }, "/sys/bus/pci")); // "/tmp/fake/sys/bus/pci"
 * ```
 */
export function hostPath(options: SysfsOptions, absolute: string): string {
  const root = options.root ?? "/";
  return root === "/" ? absolute : join(root, absolute);
}

/** The `code` of a Node-style file system error, if any. */
export function fsErrorCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * Reads an attribute and trims its trailing newline; `null` when the file does not exist (or is not readable
 * because the kernel has nothing to show, ENODEV/ENXIO/EINVAL).
 *
 * ```ts
 * import { readAttr } from "./attr.ts";
 * const override = readAttr("/sys/bus/pci/devices/0000:00:03.0/driver_override");
 * ```
 */
export function readAttr(path: string): string | null {
  try {
    return readFileSync(path, "utf8").replace(/\n+$/, "");
  } catch (e) {
    const code = fsErrorCode(e);
    if (code === "ENOENT" || code === "ENOTDIR" || code === "ENODEV" || code === "ENXIO" || code === "EINVAL") {
      return null;
    }
    throw new VfioError(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Reads a numeric attribute written as `0x…` hex or decimal; `null` when missing or not a number.
 *
 * ```ts
 * import { readNumber } from "./attr.ts";
 * const vendor = readNumber("/sys/bus/pci/devices/0000:00:03.0/vendor"); // 0x1234
 * ```
 */
export function readNumber(path: string): number | null {
  const text = readAttr(path);
  if (text === null) return null;
  const t = text.trim();
  if (!/^(0x[0-9a-fA-F]+|-?[0-9]+)$/.test(t)) return null;
  return t.startsWith("0x") ? parseInt(t.slice(2), 16) : parseInt(t, 10);
}

/**
 * The last path component of a symlink's target (`…/drivers/vfio-pci` → `vfio-pci`), or `null` when the link
 * does not exist.
 *
 * ```ts
 * import { readLinkName } from "./attr.ts";
 * console.log(readLinkName("/sys/bus/pci/devices/0000:00:03.0/driver")); // "vfio-pci" or null
 * ```
 */
export function readLinkName(path: string): string | null {
  try {
    return basename(readlinkSync(path));
  } catch (e) {
    const code = fsErrorCode(e);
    if (code === "ENOENT" || code === "ENOTDIR" || code === "EINVAL") return null;
    throw new VfioError(`cannot read the link ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** What a write to a sysfs attribute is for, used to word its error. */
export interface WriteContext {
  /** What the write does, e.g. "unbind 0000:00:03.0 from e1000e". */
  purpose: string;
  /** A remedy for errors other than permission errors. */
  remedy?: string;
}

/**
 * Writes `value` to a sysfs/procfs attribute in one `write()`. Permission errors become "run as root"; other
 * errors keep the kernel's errno in the message and carry the given remedy.
 *
 * ```ts
 * import { writeAttr } from "./attr.ts";
 * writeAttr("/sys/bus/pci/devices/0000:00:03.0/driver_override", "vfio-pci", { purpose: "select vfio-pci" });
 * ```
 */
export function writeAttr(path: string, value: string, context: WriteContext): void {
  try {
    writeFileSync(path, value);
  } catch (e) {
    const code = fsErrorCode(e) ?? "error";
    const what = `cannot ${context.purpose}: writing "${value.trim()}" to ${path} failed [${code}]`;
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
      throw new VfioError(what, {
        remedy: code === "EROFS"
          ? "sysfs is mounted read-only here (a container?): run on the host as root"
          : "run as root",
        cause: e,
      });
    }
    throw new VfioError(what, { remedy: context.remedy, cause: e });
  }
}
