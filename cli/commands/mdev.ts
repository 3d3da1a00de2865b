/**
 * `vfio mdev`: mediated devices: list the instances, the parents' types (with how many more fit), create an
 * instance, remove instances.
 *
 * ```sh
 * vfio mdev types
 * vfio mdev create mtty mtty-2
 * vfio mdev list --json
 * vfio mdev remove 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001
 * ```
 * @module
 */

import {
  createMdev,
  isMdevUuid,
  listMdevParents,
  listMediatedDevices,
  mdevTypes,
  removeMdev,
} from "../../lib/sysfs/mdev.ts";
import { type Command, EXIT, expectArgs, print, requireRoot, UsageError, type Values, writeJson } from "../common.ts";

const USAGE = "vfio mdev list | types [parent] | create <parent> <type> [--uuid U] | remove <uuid>...";

function list(positionals: string[], values: Values): number {
  expectArgs(positionals, 0, 0, "vfio mdev list [--json]");
  const all = listMediatedDevices();
  if (values.json) {
    writeJson({ mediatedDevices: all.map((m) => ({ ...m, groupType: "emulated-iommu" })) });
    return EXIT.ok;
  }
  if (all.length === 0) print("no mediated devices (vfio mdev types lists what can be created)");
  for (const m of all) {
    const group = m.iommuGroup === null ? "-" : `${m.iommuGroup} (emulated IOMMU)`;
    print(`${m.uuid}  ${m.parent} ${m.type}${m.typeName ? ` (${m.typeName})` : ""}`);
    print(`    driver ${m.driver ?? "-"}  group ${group}  cdev ${m.vfioDevicePath ?? "-"}`);
  }
  return EXIT.ok;
}

function types(positionals: string[], values: Values): number {
  expectArgs(positionals, 0, 1, "vfio mdev types [parent] [--json]");
  const parents = positionals.length
    ? [{ name: positionals[0], types: mdevTypes(positionals[0]) }]
    : listMdevParents().map((p) => ({ name: p.name, types: p.types }));
  if (values.json) {
    writeJson({ parents });
    return EXIT.ok;
  }
  if (parents.length === 0) print("no device offers mediated devices (load a parent driver, e.g. modprobe mtty)");
  for (const p of parents) {
    print(`${p.name}:`);
    for (const t of p.types) {
      const made = t.instances.length ? `, ${t.instances.length} created` : "";
      print(`  ${t.id}  ${t.name ?? "-"}  ${t.deviceApi ?? "-"}  ${t.availableInstances} available${made}`);
      if (t.description) print(`      ${t.description.split("\n").join("\n      ")}`);
    }
  }
  return EXIT.ok;
}

/** A UUID given on the command line (any case), or a usage error (exit 2) before anything else happens. */
function uuidArg(text: string): string {
  if (!isMdevUuid(text.toLowerCase())) {
    throw new UsageError(`"${text}" is not a UUID`, {
      remedy: "mediated devices are named by UUIDs such as 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001 (vfio mdev list)",
    });
  }
  return text;
}

function create(positionals: string[], values: Values): number {
  expectArgs(positionals, 2, 2, "vfio mdev create <parent> <type> [--uuid U] [--json]");
  if (typeof values.uuid === "string") uuidArg(values.uuid);
  requireRoot("creating a mediated device");
  const uuid = createMdev(positionals[0], positionals[1], {
    uuid: typeof values.uuid === "string" ? values.uuid : undefined,
  });
  if (values.json) writeJson({ uuid, parent: positionals[0], type: positionals[1] });
  else print(uuid);
  return EXIT.ok;
}

function remove(positionals: string[], values: Values): number {
  expectArgs(positionals, 1, Infinity, "vfio mdev remove <uuid>... [--json]");
  positionals.forEach(uuidArg);
  requireRoot("removing a mediated device");
  for (const u of positionals) removeMdev(u);
  if (values.json) writeJson({ removed: positionals });
  else for (const u of positionals) print(`removed ${u}`);
  return EXIT.ok;
}

/** The `mdev` command. */
export const mdev: Command = {
  name: "mdev",
  summary: "mediated devices: list, types, create, remove",
  help: `usage: ${USAGE}

Mediated devices (mdev) are VFIO devices whose "hardware" is a kernel driver (vGPU slices, the kernel's mtty
sample UART). They are named by UUIDs, sit in emulated-IOMMU groups (/dev/vfio/N), and open like PCI devices.
  list                         the instances: parent, type, driver, IOMMU group, VFIO cdev
  types [parent]               each parent's types, with how many more instances fit
  create <parent> <type>       create an instance (root); prints its UUID
    --uuid U                   the UUID to use (default: a random one)
  remove <uuid>...             remove instances (root); refused while this process has one open`,
  options: { uuid: { type: "string" } },
  run(positionals: string[], values: Values): number {
    const [sub, ...rest] = positionals;
    if (sub === "list") return list(rest, values);
    if (sub === "types") return types(rest, values);
    if (sub === "create") return create(rest, values);
    if (sub === "remove") return remove(rest, values);
    throw new UsageError(sub === undefined ? "missing sub-command" : `unknown sub-command "${sub}"`, {
      remedy: `usage: ${USAGE}`,
    });
  },
};
