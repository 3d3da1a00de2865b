/**
 * `vfio groups`: each IOMMU group, its members and their drivers, and whether VFIO can take it (viable).
 *
 * ```sh
 * vfio groups --json
 * ```
 * @module
 */

import { driverKeepsGroupViable, iommuGroup, listIommuGroups } from "../../lib/sysfs/iommu_group.ts";
import { type Command, EXIT, expectArgs, print, type Values, writeJson } from "../common.ts";

/** The `groups` command. */
export const groups: Command = {
  name: "groups",
  summary: "IOMMU groups, their members and drivers, viable or not",
  help: `usage: vfio groups [--json]

Lists every IOMMU group (no-IOMMU groups included) with its members and their drivers. A group is viable for
VFIO when every member is on vfio-pci, on no driver, or on a driver that leaves DMA to others (pcieport,
pci-stub); the members that block it are marked.`,
  options: {},
  run(positionals: string[], values: Values): number {
    expectArgs(positionals, 0, 0, "vfio groups [--json]");
    const all = listIommuGroups().map((n) => {
      const g = iommuGroup(n);
      // an emulated-IOMMU group holds mediated devices, on their parent's mdev driver: that is how VFIO takes them
      const emulated = g.groupType === "emulated-iommu";
      const members = g.members.map((m) => ({
        ...m,
        blocksViability: !emulated && !driverKeepsGroupViable(m.driver),
      }));
      return { ...g, members, viable: members.every((m) => !m.blocksViability) };
    });
    if (values.json) {
      writeJson({ groups: all });
      return EXIT.ok;
    }
    if (all.length === 0) print("no IOMMU groups (no IOMMU, and no device bound in no-IOMMU mode)");
    for (const g of all) {
      const node = `${g.vfioPath}${g.vfioPathExists ? "" : " (appears once a member is on vfio-pci)"}`;
      const kind = g.noiommu
        ? "  no-IOMMU (no DMA isolation)"
        : g.groupType === "emulated-iommu"
        ? "  emulated IOMMU (mediated devices)"
        : g.type
        ? `  ${g.type}`
        : "";
      print(`group ${g.number}  ${g.viable ? "viable" : "NOT viable"}${kind}  ${node}`);
      for (const m of g.members) {
        print(`  ${m.address}  ${m.driver ?? "-"}${m.blocksViability ? "  <- blocks VFIO: bind it to vfio-pci" : ""}`);
      }
    }
    return EXIT.ok;
  },
};
