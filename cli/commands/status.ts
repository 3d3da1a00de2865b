/**
 * `vfio status`: every PCI device, grouped as on vfio-pci / on a kernel driver / on no driver, with names from
 * pci.ids, class, driver, IOMMU group, NUMA node and what uses it; and the state of no-IOMMU mode.
 *
 * ```sh
 * vfio status --json
 * ```
 * @module
 */

import { deviceUsers, SystemScan } from "../../lib/sysfs/in_use.ts";
import { listMediatedDevices } from "../../lib/sysfs/mdev.ts";
import { noIommuStatus } from "../../lib/sysfs/noiommu.ts";
import { listPciDevices, type PciDeviceInfo } from "../../lib/sysfs/pci.ts";
import { loadPciIds, type PciIds } from "../../lib/sysfs/pci_ids.ts";
import { type Command, EXIT, expectArgs, print, type Values, writeJson } from "../common.ts";
import { deviceName, deviceSummary } from "../describe.ts";

function row(d: PciDeviceInfo, ids: PciIds, uses: string[]): string {
  const group = d.iommuGroup === null ? "-" : String(d.iommuGroup);
  const numa = d.numaNode === null ? "" : `  numa ${d.numaNode}`;
  const use = uses.length > 0 ? `  [${uses.join("; ")}]` : "";
  return `  ${d.address}  ${deviceName(d, ids)}\n      driver ${d.driver ?? "-"}  group ${group}${numa}${use}`;
}

/** The `status` command. */
export const status: Command = {
  name: "status",
  summary: "devices by driver (vfio-pci, kernel, none), IOMMU groups, no-IOMMU mode",
  help: `usage: vfio status [--json]

Lists every PCI device: address, [vendor:device] with names from pci.ids (numeric ids without the file), class,
driver, IOMMU group, NUMA node and what the system uses it for (an interface that is up, a mounted file system);
grouped as on vfio-pci, on a kernel driver, on no driver. Then whether no-IOMMU mode is supported and enabled.`,
  options: {},
  run(positionals: string[], values: Values): number {
    expectArgs(positionals, 0, 0, "vfio status [--json]");
    const ids = loadPciIds();
    const devices = listPciDevices();
    const scan = new SystemScan();
    const uses = new Map(
      devices.map((d) => [d.address, d.driver === "vfio-pci" ? [] : deviceUsers(d.address, {}, scan)]),
    );
    const noiommu = noIommuStatus();
    const mediated = listMediatedDevices();
    if (values.json) {
      writeJson({
        pciIds: ids.source,
        devices: devices.map((d) => ({
          ...deviceSummary(d, ids),
          inUse: uses.get(d.address)?.map((u) => u.description) ?? [],
        })),
        mediatedDevices: mediated.map((m) => ({ ...m, groupType: "emulated-iommu" })),
        noiommu,
      });
      return EXIT.ok;
    }
    const sections: [string, PciDeviceInfo[]][] = [
      ["on vfio-pci", devices.filter((d) => d.driver === "vfio-pci")],
      ["on a kernel driver", devices.filter((d) => d.driver !== null && d.driver !== "vfio-pci")],
      ["on no driver", devices.filter((d) => d.driver === null)],
    ];
    for (const [title, list] of sections) {
      print(`${title} (${list.length}):`);
      for (const d of list) print(row(d, ids, uses.get(d.address)?.map((u) => u.description) ?? []));
      print("");
    }
    if (mediated.length > 0) {
      print(`mediated devices (${mediated.length}), in emulated-IOMMU groups:`);
      for (const m of mediated) {
        print(`  ${m.uuid}  ${m.parent} ${m.type}\n      driver ${m.driver ?? "-"}  group ${m.iommuGroup ?? "-"}`);
      }
      print("");
    }
    print(`no-IOMMU mode: ${noiommu.summary}`);
    if (ids.source === null) print("(no pci.ids found: names are numeric; install the pci.ids package)");
    return EXIT.ok;
  },
};
