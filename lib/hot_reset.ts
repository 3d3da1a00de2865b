/**
 * PCI hot reset (`VFIO_DEVICE_PCI_HOT_RESET`): a secondary bus (or slot) reset of the bus a device sits on, which
 * resets every device there. The kernel allows it only when the caller owns all of them: on the legacy path it
 * must pass the fds of every affected IOMMU group; on the cdev path (iommufd) it passes none, and every affected
 * device must be bound to the caller's iommufd (or share an IOMMU group with one that is).
 *
 * `Device.hotReset()` computes the set from `hotResetInfo()` and the groups this process has open, and names the
 * devices the caller must also open when it does not own them all.
 *
 * ```ts ignore
 * using dev = openDevice("0000:01:01.0");
 * console.log(dev.hotResetInfo()); // [{ address: "0000:01:01.0", groupId: 7 }, { address: "0000:01:02.0", ... }]
 * dev.hotReset();
 * ```
 * @module
 */
import { readdirSync, realpathSync } from "node:fs";
import { dirname } from "node:path";
import { libc } from "../ffi/libc.ts";
import { VFIO_DEVICE_PCI_HOT_RESET, VFIO_PCI_DEVID_NOT_OWNED, VfioPciHotReset } from "./abi/vfio.ts";
import type { Device, HotResetDependent } from "./device.ts";
import { HotResetBlockedError, SystemError, UnsupportedError } from "./errors.ts";
import type { Group } from "./group.ts";
import { pciDevice } from "./sysfs/pci.ts";

/** The group each device was opened through (legacy path); devices opened through their cdev are not here. */
const groupOf = new WeakMap<object, Group>();
/** The groups this process has open, by number. */
const openGroups = new Map<number, Set<Group>>();

/**
 * Records that `device` was opened through `group` (what the legacy path's hot reset passes the fd of).
 *
 * ```ts ignore
 * rememberGroup(device, group); // lib/open_paths.ts, after opening a device through its group
 * ```
 */
export function rememberGroup(device: object, group: Group): void {
  groupOf.set(device, group);
  const set = openGroups.get(group.number) ?? new Set<Group>();
  set.add(group);
  openGroups.set(group.number, set);
}

function openGroupFd(n: number): number | null {
  for (const g of openGroups.get(n) ?? []) {
    try {
      return g.fd;
    } catch {
      openGroups.get(n)!.delete(g); // closed
    }
  }
  return null;
}

/** The other PCI functions on the device's bus (its siblings in sysfs). */
function busNeighbours(address: string): string[] {
  try {
    const parent = dirname(realpathSync(`/sys/bus/pci/devices/${address}`)); // not "/..": resolved lexically
    return readdirSync(parent).filter((n) => /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(n) && n !== address);
  } catch {
    return [];
  }
}

function driverOf(address: string): string | null {
  try {
    return pciDevice(address).driver;
  } catch {
    return null;
  }
}

/** The affected devices on another driver than vfio-pci: nobody can own those. */
function onOtherDrivers(deps: readonly HotResetDependent[]): { address: string; reason: string }[] {
  return deps.filter((d) => driverOf(d.address) !== "vfio-pci").map((d) => ({
    address: d.address,
    reason: `on ${driverOf(d.address) ?? "no driver"}, not vfio-pci`,
  }));
}

/**
 * Hot-resets `dev` and every device on its bus; throws `UnsupportedError` when the kernel offers no hot reset for
 * it, and a {@linkcode HotResetBlockedError} naming the affected devices the caller does not own.
 *
 * ```ts ignore
 * hotReset(dev); // what Device.hotReset() does
 * ```
 */
export function hotReset(dev: Device): void {
  let deps: HotResetDependent[] | null;
  try {
    deps = dev.hotResetInfo();
  } catch (e) {
    // The kernel refuses even the list when a device on the bus has no IOMMU group (a no-IOMMU neighbour on a
    // kernel driver): name the neighbours on other drivers.
    if (!(e instanceof SystemError && e.code === "EPERM")) throw e;
    const others = onOtherDrivers(busNeighbours(dev.name).map((address) => ({ address, groupId: -1 })));
    throw new HotResetBlockedError(dev.name, others, { cause: e });
  }
  if (deps === null) {
    throw new UnsupportedError(`${dev.name} has no PCI hot reset (no bus or slot reset reaches it)`, {
      remedy: "a device on the root bus cannot be bus-reset; try dev.reset() (FLR, PM reset) instead",
    });
  }
  const group = groupOf.get(dev);
  const fds: number[] = [];
  if (group) {
    const missing: { address: string; reason: string }[] = [];
    for (const n of new Set(deps.map((d) => d.groupId))) {
      const fd = openGroupFd(n);
      if (fd !== null) fds.push(fd);
      else {
        for (const d of deps.filter((d) => d.groupId === n)) {
          missing.push({ address: d.address, reason: `its IOMMU group ${n} is not open in this process` });
        }
      }
    }
    if (missing.length) throw new HotResetBlockedError(dev.name, missing);
  } else {
    // cdev: the kernel reports each affected device's id in the caller's iommufd, or "not owned".
    const notOwned = deps.filter((d) => d.groupId === VFIO_PCI_DEVID_NOT_OWNED).map((d) => ({
      address: d.address,
      reason: "not bound to this process's iommufd",
    }));
    if (notOwned.length) throw new HotResetBlockedError(dev.name, notOwned);
  }
  const arg = VfioPciHotReset.alloc(fds.length * 4);
  arg.argsz = VfioPciHotReset.size + fds.length * 4;
  arg.count = fds.length;
  const view = new DataView(arg.bytes.buffer, arg.bytes.byteOffset);
  fds.forEach((fd, i) => view.setInt32(VfioPciHotReset.size + i * 4, fd, true));
  try {
    libc.ioctl(dev.fd, VFIO_DEVICE_PCI_HOT_RESET, arg.bytes, {
      target: "VFIO_DEVICE_PCI_HOT_RESET",
      kind: "vfio-device-ioctl",
    });
  } catch (e) {
    if (e instanceof SystemError && (e.code === "EINVAL" || e.code === "EBUSY" || e.code === "EPERM")) {
      const others = onOtherDrivers(deps);
      const blocking = others.length
        ? others
        : deps.filter((d) => d.address !== dev.name).map((d) => ({ address: d.address, reason: `kernel: ${e.code}` }));
      throw new HotResetBlockedError(dev.name, blocking, { cause: e });
    }
    throw e;
  }
}
