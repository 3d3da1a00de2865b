/**
 * `vfio unbind <device…>`: takes devices off their driver (leaving `driver_override` as it is).
 *
 * ```sh
 * vfio unbind 0000:00:05.0
 * ```
 * @module
 */

import { unbind as unbindDevice } from "../../lib/sysfs/bind.ts";
import { BINDING_HELP, BINDING_OPTIONS, checkedDevices, printSteps, requireRootUnlessDry } from "../binding.ts";
import { testPauseHook, withDriverChange } from "../binding.ts";
import { type Command, EXIT, print, UsageError, type Values, writeJson } from "../common.ts";

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
    if (positionals.length === 0) throw new UsageError("missing device", { remedy: "usage: vfio unbind <device…>" });
    const dryRun = values["dry-run"] === true;
    const devices = checkedDevices(positionals, values, "unbind");
    requireRootUnlessDry("unbind", dryRun);
    const onStep = testPauseHook();
    const results = withDriverChange(() => devices.map((d) => unbindDevice(d.address, { dryRun, onStep })));
    if (values.json) {
      writeJson({ results });
      return EXIT.ok;
    }
    for (const r of results) {
      if (dryRun) printSteps(r.address, r.steps);
      else print(r.previousDriver ? `${r.address}: unbound from ${r.previousDriver}` : `${r.address}: had no driver`);
    }
    return EXIT.ok;
  },
};
