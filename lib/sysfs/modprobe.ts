/**
 * Loading kernel modules with `modprobe` (vfio, vfio-pci), with errors that say what is missing.
 *
 * ```ts
 * import { isModuleLoaded, modprobe } from "./modprobe.ts";
 * if (!isModuleLoaded("vfio_pci")) modprobe("vfio-pci");
 * ```
 * @module
 */

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { InvalidDriverError, VfioError } from "../errors.ts";
import { shellQuote } from "../shell_quote.ts";
import { fsErrorCode, hostPath, type SysfsOptions } from "./attr.ts";
import { isModuleName } from "./driver_name.ts";

const CANDIDATES = ["modprobe", "/usr/sbin/modprobe", "/sbin/modprobe"];

/**
 * Whether module `name` is loaded (or built in with parameters): `/sys/module/<name>` exists. Dashes and
 * underscores are the same to the kernel; sysfs uses underscores.
 *
 * ```ts
 * import { isModuleLoaded } from "./modprobe.ts";
 * console.log(isModuleLoaded("vfio-pci"));
 * ```
 */
export function isModuleLoaded(name: string, options: SysfsOptions = {}): boolean {
  return existsSync(hostPath(options, `/sys/module/${name.replaceAll("-", "_")}`));
}

/**
 * Runs `modprobe <module> [params…]`. The module must be a plain module name and each parameter `name` or
 * `name=value`, so that nothing is read as a modprobe option.
 *
 * @throws {InvalidDriverError} a module name or parameter modprobe could take for an option or a path.
 * @throws {VfioError} when modprobe is not installed, not permitted, or fails (with its own message).
 *
 * ```ts
 * import { modprobe } from "./modprobe.ts";
 * modprobe("vfio", ["enable_unsafe_noiommu_mode=1"]);
 * ```
 */
export function modprobe(module: string, params: readonly string[] = []): void {
  if (!isModuleName(module)) {
    throw new InvalidDriverError(module, "not a module name (letters, digits, '_' and '-', not first)");
  }
  const bad = params.find((p) => !/^[A-Za-z0-9_]+(=[^\s]*)?$/.test(p));
  if (bad !== undefined) throw new InvalidDriverError(module, `bad module parameter ${JSON.stringify(bad)}`);
  const command = ["modprobe", module, ...params].map(shellQuote).join(" ");
  for (const exe of CANDIDATES) {
    try {
      execFileSync(exe, [module, ...params], { stdio: ["ignore", "pipe", "pipe"] });
      return;
    } catch (e) {
      const code = fsErrorCode(e);
      if (code === "ENOENT") continue;
      if (code === "EACCES" || code === "EPERM") {
        throw new VfioError(`cannot run ${command}: permission denied`, { remedy: "run as root", cause: e });
      }
      const stderr = String((e as { stderr?: unknown }).stderr ?? "").trim();
      throw new VfioError(`${command} failed${stderr ? `: ${stderr}` : ""}`, {
        remedy: stderr.includes("ermission") || stderr.includes("ot permitted")
          ? "run as root"
          : `is the module built for this kernel? see \`modinfo ${module}\` and dmesg`,
        cause: e,
      });
    }
  }
  throw new VfioError(`cannot run ${command}: modprobe is not installed`, {
    remedy: `install kmod, or load ${module} some other way before calling vfio-ts`,
  });
}
