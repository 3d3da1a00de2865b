/**
 * What `bind`, `unbind` and `restore` share: the in-use refusal, the root check, and printing the steps.
 *
 * ```ts
 * import { refuseInUse } from "./binding.ts";
 * refuseInUse("0000:00:05.0", "bind", false); // throws a RefusedError when its interface is up
 * ```
 * @module
 */

import { describeStep, type SysfsStep } from "../lib/sysfs/bind.ts";
import { deviceUsers } from "../lib/sysfs/in_use.ts";
import { print, RefusedError, requireRoot } from "./common.ts";

/** Options of the three commands. */
export const BINDING_HELP = `  --dry-run    print what would be done (the shell commands), do nothing
  --force      go on although the system uses the device (interface up, mounted, swap)`;

/** Throws a {@linkcode RefusedError} naming every use of the device, unless `force`. */
export function refuseInUse(address: string, verb: string, force: boolean): void {
  if (force) return;
  const uses = deviceUsers(address);
  if (uses.length === 0) return;
  const up = uses.filter((u) => u.kind === "interface-up").map((u) => `ip link set ${u.name} down`);
  const fix = up.length > 0
    ? `take it down first: ${up.join("; ")}; or pass --force`
    : "stop using it, or pass --force";
  throw new RefusedError(`refusing to ${verb} ${address}: ${uses.map((u) => u.description).join("; ")}`, {
    remedy: fix,
  });
}

/** The root check, skipped for dry runs. */
export function requireRootUnlessDry(command: string, dryRun: boolean): void {
  if (!dryRun) requireRoot(`vfio ${command}`);
}

/** Prints the steps of a dry run as shell commands. */
export function printSteps(address: string, steps: readonly SysfsStep[]): void {
  if (steps.length === 0) print(`${address}: nothing to do`);
  for (const s of steps) print(`${describeStep(s)}    # ${s.purpose}`);
}
