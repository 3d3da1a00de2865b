/**
 * `vfio restore <device…>`: gives devices back to the driver they had before `vfio bind`.
 *
 * ```sh
 * vfio restore 0000:00:05.0
 * ```
 * @module
 */

import { restoreDriver } from "../../lib/sysfs/bind.ts";
import { checkDriverName } from "../../lib/sysfs/driver_name.ts";
import { pciDevice } from "../../lib/sysfs/pci.ts";
import { printSteps, requireRootUnlessDry, testPauseHook, withDriverChange } from "../binding.ts";
import { type Command, EXIT, print, resolveDevices, UsageError, type Values, writeJson } from "../common.ts";

/** The `restore` command. */
export const restore: Command = {
  name: "restore",
  summary: "give devices back to the driver they had",
  help: `usage: vfio restore <device…> [--driver NAME|none] [--dry-run] [--json]

Restores each device's driver_override and binds the driver recorded by \`vfio bind\` in /run/vfio-ts (or, with
nothing recorded, the one the kernel picks), then removes the record: this also clears what an interrupted bind
left behind (\`vfio status\` shows it). Refuses while a process holds the device's VFIO group or cdev open, and
records not written by root (exit 2).
  --driver NAME   bind this driver instead ("none": leave it unbound); a loaded PCI driver or a module name
  --dry-run       print what would be done (the shell commands), do nothing`,
  options: { "dry-run": { type: "boolean" }, driver: { type: "string" } },
  run(positionals: string[], values: Values): number {
    if (positionals.length === 0) throw new UsageError("missing device", { remedy: "usage: vfio restore <device…>" });
    const dryRun = values["dry-run"] === true;
    const devices = resolveDevices(positionals);
    requireRootUnlessDry("restore", dryRun);
    const driver = values.driver === undefined ? undefined : values.driver === "none" ? null : String(values.driver);
    const onStep = testPauseHook();
    const results = withDriverChange(() => {
      if (driver) checkDriverName(driver, "the --driver argument");
      return devices.map((d) => ({ before: d.driver, ...restoreDriver(d.address, { dryRun, driver, onStep }) }));
    });
    if (values.json) {
      writeJson({ results });
      return EXIT.ok;
    }
    for (const r of results) {
      if (dryRun) printSteps(r.address, r.steps);
      else if (r.steps.length === 0) print(`${r.address}: nothing to do (on ${r.driver ?? "no driver"})`);
      else print(`${r.address}: ${r.before ?? "no driver"} -> ${pciDevice(r.address).driver ?? "no driver"}`);
    }
    return EXIT.ok;
  },
};
