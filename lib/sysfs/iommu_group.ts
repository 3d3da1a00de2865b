/**
 * IOMMU groups from `/sys/kernel/iommu_groups`: who is in a group, which VFIO node opens it (`/dev/vfio/N` or
 * `/dev/vfio/noiommu-N`), and which members keep it from being viable.
 *
 * ```ts
 * import { GroupNotViableError } from "@vfio-ts/vfio";
 * import { groupViabilityBlockers, iommuGroup } from "@vfio-ts/vfio/sysfs";
 * const group = iommuGroup(7);
 * const blockers = groupViabilityBlockers(group.number);
 * if (blockers.length) throw new GroupNotViableError(group.number, blockers);
 * console.log(group.vfioPath); // "/dev/vfio/7"
 * ```
 * @module
 */

import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { type GroupMember, VfioError } from "../errors.ts";
import { hostPath, readAttr, readLinkName, type SysfsOptions } from "./attr.ts";

/**
 * The name vfio gives the IOMMU groups it makes itself: for devices without an IOMMU, and (the same name) for
 * emulated-IOMMU devices such as mediated devices.
 */
const NOIOMMU_GROUP_NAME = "vfio-noiommu";

/**
 * The kernel's three kinds of VFIO group (`enum vfio_group_type`):
 * - `iommu`: a real IOMMU isolates the device's DMA;
 * - `emulated-iommu`: a mediated device (mdev): a kernel driver mediates every access, and DMA goes only where
 *   the driver pins it from the container's/IOAS's mappings (`/dev/vfio/N`, no IOMMU hardware needed);
 * - `noiommu`: nothing isolates the device: it can DMA anywhere (`/dev/vfio/noiommu-N`, the kernel is tainted).
 */
export type GroupType = "iommu" | "emulated-iommu" | "noiommu";

/**
 * Drivers that leave a group viable: they claim no DMA ownership (the kernel's `driver_managed_dma`), so vfio
 * can still take the group. Bridges sit on `pcieport`; `pci-stub` is the classic placeholder.
 */
const VIABLE_DRIVERS: ReadonlySet<string> = new Set(["vfio-pci", "pcieport", "pci-stub"]);

/** What sysfs says about one IOMMU group. */
export interface IommuGroupInfo {
  /** Group number. */
  readonly number: number;
  /** Its members (PCI addresses, or other device names for non-PCI members) and their drivers. */
  readonly members: readonly GroupMember[];
  /** The group's default domain type from its `type` attribute (`DMA`, `DMA-FQ`, `identity`, `unknown` …). */
  readonly type: string | null;
  /** The group's `name` attribute (`vfio-noiommu` for no-IOMMU groups), or `null`. */
  readonly name: string | null;
  /** What isolates the members' DMA: a real IOMMU, an emulated one (mediated devices) or nothing. */
  readonly groupType: GroupType;
  /** Whether this is a no-IOMMU group made by vfio (no DMA isolation at all): `groupType === "noiommu"`. */
  readonly noiommu: boolean;
  /** The VFIO group node that opens it: `/dev/vfio/N` or `/dev/vfio/noiommu-N`. */
  readonly vfioPath: string;
  /** Whether that node exists now (it appears once a member is bound to vfio-pci). */
  readonly vfioPathExists: boolean;
}

function groupDir(n: number, options: SysfsOptions): string {
  if (!Number.isInteger(n) || n < 0) {
    throw new VfioError(`invalid IOMMU group number ${n}`, { remedy: "group numbers are integers ≥ 0" });
  }
  return hostPath(options, `/sys/kernel/iommu_groups/${n}`);
}

/**
 * Lists the IOMMU group numbers, ascending. Empty when the machine has no IOMMU and no no-IOMMU group yet.
 *
 * ```ts
 * import { listIommuGroups } from "@vfio-ts/vfio/sysfs";
 * console.log(listIommuGroups()); // [0, 1, 2, …]
 * ```
 */
export function listIommuGroups(options: SysfsOptions = {}): number[] {
  try {
    return readdirSync(hostPath(options, "/sys/kernel/iommu_groups"))
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .sort((a, b) => a - b);
  } catch {
    return [];
  }
}

/**
 * The members of group `n` with their drivers.
 *
 * @throws {VfioError} when there is no such group.
 *
 * ```ts
 * import { iommuGroupMembers } from "@vfio-ts/vfio/sysfs";
 * for (const m of iommuGroupMembers(7)) console.log(m.address, m.driver ?? "no driver");
 * ```
 */
export function iommuGroupMembers(n: number, options: SysfsOptions = {}): GroupMember[] {
  const dir = join(groupDir(n, options), "devices");
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    throw new VfioError(`there is no IOMMU group ${n}`, {
      remedy: "`vfio status` lists devices and their groups; a no-IOMMU group appears only once its device is " +
        "bound to vfio-pci",
    });
  }
  return names.sort().map((address) => ({ address, driver: readLinkName(join(dir, address, "driver")) }));
}

/**
 * Reads everything about group `n`: members, type, whether it is a no-IOMMU group and its VFIO node.
 *
 * ```ts
 * import { iommuGroup } from "@vfio-ts/vfio/sysfs";
 * const g = iommuGroup(0);
 * if (g.noiommu) console.log(`${g.vfioPath}: no DMA isolation`);
 * ```
 */
export function iommuGroup(n: number, options: SysfsOptions = {}): IommuGroupInfo {
  const members = iommuGroupMembers(n, options);
  const dir = groupDir(n, options);
  const name = readAttr(join(dir, "name"));
  const groupType = groupTypeOf(n, name, members, options);
  const noiommu = groupType === "noiommu";
  const vfioPath = noiommu ? `/dev/vfio/noiommu-${n}` : `/dev/vfio/${n}`;
  return {
    number: n,
    members,
    type: readAttr(join(dir, "type")),
    name,
    groupType,
    noiommu,
    vfioPath,
    vfioPathExists: existsSync(hostPath(options, vfioPath)),
  };
}

/**
 * vfio names both of its own group kinds `vfio-noiommu`; they differ in their node (`/dev/vfio/noiommu-N` against
 * `/dev/vfio/N`) and in their members (mediated devices sit on the `mdev` bus).
 */
function groupTypeOf(n: number, name: string | null, members: GroupMember[], options: SysfsOptions): GroupType {
  if (existsSync(hostPath(options, `/dev/vfio/noiommu-${n}`))) return "noiommu";
  if (name !== NOIOMMU_GROUP_NAME) return "iommu";
  const dir = join(groupDir(n, options), "devices");
  const mediated = members.length > 0 &&
    members.every((m) => readLinkName(join(dir, m.address, "subsystem")) === "mdev");
  return mediated || existsSync(hostPath(options, `/dev/vfio/${n}`)) ? "emulated-iommu" : "noiommu";
}

/**
 * Whether a member on `driver` leaves its group viable: no driver, vfio-pci (or a vfio-pci variant driver such as
 * `mlx5_vfio_pci`), `pcieport` (bridges) or `pci-stub`.
 *
 * ```ts
 * import { driverKeepsGroupViable } from "@vfio-ts/vfio/sysfs";
 * console.log(driverKeepsGroupViable("pcieport"), driverKeepsGroupViable("snd_hda_intel")); // true false
 * ```
 */
export function driverKeepsGroupViable(driver: string | null): boolean {
  if (driver === null || VIABLE_DRIVERS.has(driver)) return true;
  return /(^|[-_])vfio[-_]pci$/.test(driver) || driver.startsWith("vfio-");
}

/**
 * The members of group `n` that keep it from being viable: those bound to a driver other than vfio-pci,
 * `pcieport`, `pci-stub` or none. Feed them to `GroupNotViableError`.
 *
 * ```ts
 * import { GroupNotViableError } from "@vfio-ts/vfio";
 * import { groupViabilityBlockers } from "@vfio-ts/vfio/sysfs";
 * const blockers = groupViabilityBlockers(7);
 * if (blockers.length > 0) throw new GroupNotViableError(7, blockers);
 * ```
 */
export function groupViabilityBlockers(n: number, options: SysfsOptions = {}): GroupMember[] {
  return iommuGroupMembers(n, options).filter((m) => !driverKeepsGroupViable(m.driver));
}
