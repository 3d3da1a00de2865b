/**
 * `vfio bind <device…>`: hands devices to vfio-pci through `driver_override` (loading vfio-pci if needed),
 * recording their drivers for `vfio restore`; refuses devices the system uses unless `--force`.
 *
 * ```sh
 * vfio bind 0000:00:05.0 --dry-run
 * ```
 * @module
 */

import { bindToVfio } from "../../lib/sysfs/bind.ts";
import { groupViabilityBlockers } from "../../lib/sysfs/iommu_group.ts";
import { BINDING_HELP, BINDING_OPTIONS, changeEachDevice, printSteps } from "../binding.ts";
import { type Command, EXIT, print, type Values, warn } from "../common.ts";

/** The `bind` command. */
export const bind: Command = {
  name: "bind",
  summary: "bind devices to vfio-pci (addresses or vendor:device)",
  help: `usage: vfio bind <device…> [--dry-run] [--force [--force-critical]] [--all-matching] [--json]

Binds each device to vfio-pci: sets driver_override, unbinds its driver, probes again (loads vfio-pci first if
needed) and records the driver it had for \`vfio restore\`. Refuses a device the system is using — a network
interface that is up, a mounted block device, swap, an open device node — unless --force; one that carries the
default route or the root file system needs --force-critical. Devices are addresses or vendor:device ids (a
pattern with * or matching several devices needs --all-matching).
${BINDING_HELP}`,
  options: BINDING_OPTIONS,
  run(positionals: string[], values: Values): number {
    const done = changeEachDevice("bind", positionals, values, bindToVfio);
    for (const r of done?.results ?? []) {
      if (done?.dryRun) {
        printSteps(r.address, r.steps);
        continue;
      }
      const group = r.device.iommuGroup;
      print(
        r.alreadyBound
          ? `${r.address}: already on vfio-pci`
          : `${r.address}: ${r.previousDriver ?? "no driver"} -> vfio-pci (IOMMU group ${group ?? "-"})`,
      );
      if (group !== null) {
        const blockers = groupViabilityBlockers(group);
        if (blockers.length > 0) {
          const list = blockers.map((m) => `${m.address} (${m.driver})`).join(", ");
          warn(`IOMMU group ${group} is not viable yet: ${list} (bind them too before opening the device)`);
        }
      }
    }
    return EXIT.ok;
  },
};
