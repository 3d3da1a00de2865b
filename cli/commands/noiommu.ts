/**
 * `vfio noiommu status|enable|disable`: VFIO's no-IOMMU mode (unsafe: unchecked DMA, tainted kernel).
 *
 * ```sh
 * vfio noiommu status --json
 * ```
 * @module
 */

import { disableNoiommu, enableNoiommu, noiommuStatus } from "../../lib/sysfs/noiommu.ts";
import {
  type Command,
  EXIT,
  expectArgs,
  print,
  requireRoot,
  UsageError,
  type Values,
  warn,
  writeJson,
} from "../common.ts";

const WARNING = "no-IOMMU mode leaves the device's DMA unchecked (it can read and write any memory) and taints " +
  "the kernel: use it on test machines and VMs, or with devices and programs you trust";

/** The `noiommu` command. */
export const noiommu: Command = {
  name: "noiommu",
  summary: "no-IOMMU mode: status, enable, disable",
  help: `usage: vfio noiommu status|enable|disable [--json]

status   whether the kernel offers VFIO's no-IOMMU mode, whether it is on, and the no-IOMMU groups
enable   turn it on (loads vfio with enable_unsafe_noiommu_mode=1 if needed). ${WARNING}.
disable  turn it off (existing no-IOMMU groups stay until their devices are unbound)`,
  options: {},
  run(positionals: string[], values: Values): number {
    expectArgs(positionals, 1, 1, "vfio noiommu status|enable|disable");
    const action = positionals[0];
    let status;
    if (action === "status") {
      status = noiommuStatus();
    } else if (action === "enable") {
      requireRoot("vfio noiommu enable");
      warn(`warning: ${WARNING}`);
      status = enableNoiommu({ iUnderstandTheRisk: true });
    } else if (action === "disable") {
      requireRoot("vfio noiommu disable");
      status = disableNoiommu();
    } else {
      throw new UsageError(`unknown action "${action}"`, { remedy: "use status, enable or disable" });
    }
    if (values.json) {
      writeJson(status);
      return EXIT.ok;
    }
    print(`no-IOMMU mode: ${status.summary}`);
    if (status.groups.length > 0) {
      print(`no-IOMMU groups: ${status.groups.map((g) => `/dev/vfio/noiommu-${g}`).join(" ")}`);
    }
    return EXIT.ok;
  },
};
