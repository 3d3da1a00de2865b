/**
 * `vfio unbind <device…>`: takes devices off their driver (leaving `driver_override` as it is).
 *
 * ```sh
 * vfio unbind 0000:00:05.0
 * ```
 * @module
 */

import { unbind as unbindDevice } from "../../lib/sysfs/bind.ts";
import { BINDING_HELP, BINDING_OPTIONS, changeEachDevice, printSteps } from "../binding.ts";
import { type Command, EXIT, print, type Values } from "../common.ts";

/** The `unbind` command. */
export const unbind: Command = {
  name: "unbind",
  summary: "unbind devices from their driver",
  help: `usage: vfio unbind <device…> [--dry-run] [--force [--force-critical]] [--all-matching] [--json]

Unbinds each device from its driver. driver_override stays as it is, so a device bound with \`vfio bind\` returns
to vfio-pci on the next probe; \`vfio restore\` gives it back to its original driver. Refuses a device the system
is using (see \`vfio bind\`) unless --force, and a device whose VFIO group a process holds open.
${BINDING_HELP}`,
  options: BINDING_OPTIONS,
  run(positionals: string[], values: Values): number {
    const done = changeEachDevice("unbind", positionals, values, unbindDevice);
    for (const r of done?.results ?? []) {
      if (done?.dryRun) printSteps(r.address, r.steps);
      else print(r.previousDriver ? `${r.address}: unbound from ${r.previousDriver}` : `${r.address}: had no driver`);
    }
    return EXIT.ok;
  },
};
