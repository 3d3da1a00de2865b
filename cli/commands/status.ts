/**
 * `vfio status`: every PCI device, grouped as on vfio-pci / on a kernel driver / on no driver, with names from
 * pci.ids, class, driver, IOMMU group, NUMA node and what uses it; and the state of no-IOMMU mode.
 *
 * ```sh
 * vfio status --json
 * ```
 * @module
 */

import { readdirSync } from "node:fs";
import { fsErrorCode } from "../../lib/sysfs/attr.ts";
import { type DriverRecord, recordedDriver, RECORDS_DIR, recordsDirectory } from "../../lib/sysfs/driver_record.ts";
import { deviceUsers, SystemScan } from "../../lib/sysfs/in_use.ts";
import { listMediatedDevices } from "../../lib/sysfs/mdev.ts";
import { noiommuStatus } from "../../lib/sysfs/noiommu.ts";
import { listPciDevices, type PciDeviceInfo } from "../../lib/sysfs/pci.ts";
import { loadPciIds, type PciIds } from "../../lib/sysfs/pci_ids.ts";
import { type Command, EXIT, expectArgs, print, type Values, warn, writeJson } from "../common.ts";
import { deviceName, deviceSummary } from "../describe.ts";

/** What `vfio bind` left on a device: its record, and a driver_override its driver does not match. */
interface Leftovers {
  record: DriverRecord | null;
  recordError: string | null;
  pendingOverride: string | null;
}

/** The names in the records directory, after its checks; empty (with a note on stderr) when they cannot be read. */
function recordFiles(): Set<string> {
  try {
    const dir = recordsDirectory();
    return new Set(dir === null ? [] : readdirSync(dir));
  } catch (e) {
    const denied = fsErrorCode(e) === "EACCES";
    warn(`driver records are not shown: ${denied ? `${RECORDS_DIR} is readable by root only` : (e as Error).message}`);
    return new Set();
  }
}

function leftovers(d: PciDeviceInfo, files: Set<string>): Leftovers {
  const pendingOverride = d.driverOverride !== null && d.driverOverride !== d.driver ? d.driverOverride : null;
  if (!files.has(`${d.address}.json`)) return { record: null, recordError: null, pendingOverride };
  try {
    return { record: recordedDriver(d.address), recordError: null, pendingOverride };
  } catch (e) {
    return { record: null, recordError: (e as Error).message, pendingOverride };
  }
}

function leftoverLines(d: PciDeviceInfo, l: Leftovers): string {
  const lines: string[] = [];
  const fix = `\`vfio restore ${d.address}\``;
  if (l.pendingOverride !== null) {
    lines.push(`driver_override ${l.pendingOverride} pending: the next probe gives it to ${l.pendingOverride}; ${fix}`);
  }
  if (l.record !== null && d.driver === "vfio-pci") lines.push(`recorded original driver ${l.record.driver ?? "none"}`);
  else if (l.record !== null) {
    lines.push(`record left behind (was on ${l.record.driver ?? "no driver"} before vfio bind); ${fix} clears it`);
  }
  if (l.recordError !== null) lines.push(`record not trusted: ${l.recordError}`);
  return lines.map((x) => `\n      ${x}`).join("");
}

function row(d: PciDeviceInfo, ids: PciIds, uses: string[], l: Leftovers): string {
  const group = d.iommuGroup === null ? "-" : String(d.iommuGroup);
  const numa = d.numaNode === null ? "" : `  numa ${d.numaNode}`;
  const use = uses.length > 0 ? `  [${uses.join("; ")}]` : "";
  return `  ${d.address}  ${deviceName(d, ids)}\n      driver ${d.driver ?? "-"}  group ${group}${numa}${use}` +
    leftoverLines(d, l);
}

/** The `status` command. */
export const status: Command = {
  name: "status",
  summary: "devices by driver (vfio-pci, kernel, none), IOMMU groups, no-IOMMU mode",
  help: `usage: vfio status [--json]

Lists every PCI device: address, [vendor:device] with names from pci.ids (numeric ids without the file), class,
driver, IOMMU group, NUMA node and what the system uses it for (an interface that is up, a mounted file system);
grouped as on vfio-pci, on a kernel driver, on no driver. Under a device: a driver_override that its driver does
not match (the next probe would move it: an interrupted \`vfio bind\` leaves one) and the driver record \`vfio bind\`
keeps in /run/vfio-ts; \`vfio restore\` clears both. Then whether no-IOMMU mode is supported and enabled.`,
  options: {},
  run(positionals: string[], values: Values): number {
    expectArgs(positionals, 0, 0, "vfio status [--json]");
    const ids = loadPciIds();
    const devices = listPciDevices();
    const scan = new SystemScan();
    const uses = new Map(
      devices.map((d) => [d.address, d.driver === "vfio-pci" ? [] : deviceUsers(d.address, {}, scan)]),
    );
    const files = recordFiles();
    const left = new Map(devices.map((d) => [d.address, leftovers(d, files)]));
    const noiommu = noiommuStatus();
    const mediated = listMediatedDevices();
    if (values.json) {
      writeJson({
        pciIds: ids.source,
        devices: devices.map((d) => ({
          ...deviceSummary(d, ids),
          inUse: uses.get(d.address)?.map((u) => u.description) ?? [],
          ...left.get(d.address),
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
      for (const d of list) {
        print(row(d, ids, uses.get(d.address)?.map((u) => u.description) ?? [], left.get(d.address) as Leftovers));
      }
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
