/**
 * Mediated devices (mdev) in sysfs: the parents that offer them (`/sys/class/mdev_bus/<parent>`), the types each
 * parent supports (`mdev_supported_types/<type>/{name,description,available_instances,device_api}`), the
 * instances (`/sys/bus/mdev/devices/<uuid>`: parent, type, IOMMU group, VFIO cdev), and creating and removing
 * instances. A mediated device is a VFIO device whose "hardware" is a kernel driver (a vGPU slice, an
 * accelerator's virtual function, the kernel's `mtty` sample UART); it sits in an emulated-IOMMU group.
 *
 * ```ts
 * import { createMdev, mdevTypes, removeMdev } from "@vfio-ts/vfio/sysfs";
 * console.log(mdevTypes("mtty").map((t) => `${t.id}: ${t.availableInstances} available`));
 * const uuid = createMdev("mtty", "mtty-2");
 * removeMdev(uuid);
 * ```
 * @module
 */

import { existsSync, readdirSync, realpathSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { VfioError } from "../errors.ts";
import { hostPath, readAttr, readLinkName, readNumber, type SysfsOptions, writeAttr } from "./attr.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** One type of mediated device a parent can create. */
export interface MdevType {
  /** The parent device's name (`mtty`, or a PCI address for a GPU). */
  readonly parent: string;
  /** The type's id, the directory name under `mdev_supported_types` (`mtty-2`). */
  readonly id: string;
  /** Its human-readable `name` (`Dual port serial`), or `null`. */
  readonly name: string | null;
  /** Its `description`, or `null` (optional in the kernel). */
  readonly description: string | null;
  /** How many more instances the parent can create now. */
  readonly availableInstances: number;
  /** The VFIO device API the instances offer (`vfio-pci`, `vfio-ccw`, `vfio-ap`), or `null`. */
  readonly deviceApi: string | null;
  /** The UUIDs of this type's existing instances. */
  readonly instances: readonly string[];
}

/** A device that offers mediated devices. */
export interface MdevParent {
  /** The parent device's name (`mtty`, `0000:00:02.0` …). */
  readonly name: string;
  /** Its sysfs directory (resolved). */
  readonly sysfsPath: string;
  /** The types it supports. */
  readonly types: readonly MdevType[];
}

/** What sysfs says about one mediated device. */
export interface MediatedDeviceInfo {
  /** Its UUID, the name VFIO knows it by (`VFIO_GROUP_GET_DEVICE_FD` takes it). */
  readonly uuid: string;
  /** The parent device's name. */
  readonly parent: string;
  /** The type id (`mtty-2`). */
  readonly type: string;
  /** The type's human-readable name, or `null`. */
  readonly typeName: string | null;
  /** The bound mdev driver (`mtty`), or `null`. */
  readonly driver: string | null;
  /** Its IOMMU group number (an emulated-IOMMU group), or `null` before a VFIO driver registered it. */
  readonly iommuGroup: number | null;
  /** The VFIO device's name in sysfs (`vfio3`), or `null`. */
  readonly vfioDevice: string | null;
  /** The VFIO device cdev (`/dev/vfio/devices/vfio3`) when it exists, for the iommufd path; else `null`. */
  readonly vfioDevicePath: string | null;
  /** Its sysfs directory (resolved: below the parent's). */
  readonly sysfsPath: string;
}

/** Options of {@linkcode createMdev}. */
export interface CreateMdevOptions extends SysfsOptions {
  /** The new instance's UUID (default: a random one). */
  uuid?: string;
}

/**
 * Whether `s` is a UUID as the kernel writes them (lower-case, 8-4-4-4-12 hex digits).
 *
 * ```ts
 * import { isMdevUuid } from "@vfio-ts/vfio/sysfs";
 * console.log(isMdevUuid("83b8f4f2-509f-382f-3c1e-e6bfe0fa1001")); // true
 * ```
 */
export function isMdevUuid(s: string): boolean {
  return UUID.test(s);
}

function checkUuid(uuid: string): string {
  const u = uuid.toLowerCase();
  if (!UUID.test(u)) {
    throw new VfioError(`"${uuid}" is not a UUID`, {
      remedy: "mediated devices are named by UUIDs such as 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001 (crypto.randomUUID())",
    });
  }
  return u;
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch {
    return [];
  }
}

function parentDir(name: string, options: SysfsOptions): string {
  return hostPath(options, `/sys/class/mdev_bus/${name}`);
}

/**
 * The names of the devices that offer mediated devices (`/sys/class/mdev_bus`); empty when mdev is not loaded.
 *
 * ```ts
 * import { listMdevParentNames } from "@vfio-ts/vfio/sysfs";
 * console.log(listMdevParentNames()); // ["mtty"]
 * ```
 */
export function listMdevParentNames(options: SysfsOptions = {}): string[] {
  return listDir(hostPath(options, "/sys/class/mdev_bus"));
}

function unknownParent(name: string, options: SysfsOptions): VfioError {
  const known = listMdevParentNames(options);
  return new VfioError(`there is no mediated-device parent "${name}"`, {
    remedy: known.length
      ? `parents here: ${known.join(", ")}`
      : "no device offers mediated devices: load a parent driver, such as the kernel's sample: modprobe mtty",
  });
}

function readType(parent: string, typesDir: string, id: string): MdevType {
  const dir = join(typesDir, id);
  return {
    parent,
    id,
    name: readAttr(join(dir, "name")),
    description: readAttr(join(dir, "description")),
    availableInstances: readNumber(join(dir, "available_instances")) ?? 0,
    deviceApi: readAttr(join(dir, "device_api")),
    instances: listDir(join(dir, "devices")),
  };
}

/**
 * The types parent `parent` supports, with how many instances of each it can still create.
 *
 * @throws {VfioError} when there is no such parent.
 *
 * ```ts
 * import { mdevTypes } from "@vfio-ts/vfio/sysfs";
 * for (const t of mdevTypes("mtty")) console.log(t.id, t.name, t.availableInstances); // mtty-1 Single port serial 24
 * ```
 */
export function mdevTypes(parent: string, options: SysfsOptions = {}): MdevType[] {
  const dir = parentDir(parent, options);
  if (!existsSync(dir)) throw unknownParent(parent, options);
  const typesDir = join(dir, "mdev_supported_types");
  return listDir(typesDir).map((id) => readType(parent, typesDir, id));
}

/**
 * Every device that offers mediated devices, with its types.
 *
 * ```ts
 * import { listMdevParents } from "@vfio-ts/vfio/sysfs";
 * for (const p of listMdevParents()) console.log(p.name, p.types.map((t) => t.id));
 * ```
 */
export function listMdevParents(options: SysfsOptions = {}): MdevParent[] {
  return listMdevParentNames(options).map((name) => ({
    name,
    sysfsPath: realpathSync(parentDir(name, options)),
    types: mdevTypes(name, options),
  }));
}

function vfioDeviceName(dir: string): string | null {
  return listDir(join(dir, "vfio-dev")).find((n) => /^vfio\d+$/.test(n)) ?? null;
}

function readMediated(uuid: string, link: string, options: SysfsOptions): MediatedDeviceInfo {
  const dir = realpathSync(link);
  const typeLink = join(link, "mdev_type");
  const group = readLinkName(join(link, "iommu_group"));
  const vfioDevice = vfioDeviceName(link);
  const cdev = vfioDevice === null ? null : `/dev/vfio/devices/${vfioDevice}`;
  let typeName: string | null = null;
  try {
    typeName = readAttr(join(realpathSync(typeLink), "name"));
  } catch { /* no type link: typeName stays null */ }
  return {
    uuid,
    parent: basename(dirname(dir)),
    type: readLinkName(typeLink) ?? "",
    typeName,
    driver: readLinkName(join(link, "driver")),
    iommuGroup: group === null ? null : Number(group),
    vfioDevice,
    vfioDevicePath: cdev !== null && existsSync(hostPath(options, cdev)) ? cdev : null,
    sysfsPath: dir,
  };
}

/**
 * The UUIDs of the mediated devices that exist now (`/sys/bus/mdev/devices`).
 *
 * ```ts
 * import { listMediatedDeviceUuids } from "@vfio-ts/vfio/sysfs";
 * console.log(listMediatedDeviceUuids());
 * ```
 */
export function listMediatedDeviceUuids(options: SysfsOptions = {}): string[] {
  return listDir(hostPath(options, "/sys/bus/mdev/devices")).filter((n) => UUID.test(n));
}

/**
 * Every mediated device with its parent, type and IOMMU group.
 *
 * ```ts
 * import { listMediatedDevices } from "@vfio-ts/vfio/sysfs";
 * for (const m of listMediatedDevices()) console.log(m.uuid, m.parent, m.type, `group ${m.iommuGroup}`);
 * ```
 */
export function listMediatedDevices(options: SysfsOptions = {}): MediatedDeviceInfo[] {
  return listMediatedDeviceUuids(options).map((u) => mediatedDevice(u, options));
}

/**
 * Reads one mediated device's sysfs information.
 *
 * @throws {VfioError} when `uuid` is not a UUID or no such mediated device exists.
 *
 * ```ts
 * import { mediatedDevice } from "@vfio-ts/vfio/sysfs";
 * const m = mediatedDevice("83b8f4f2-509f-382f-3c1e-e6bfe0fa1001");
 * console.log(m.parent, m.type, m.iommuGroup, m.vfioDevicePath);
 * ```
 */
export function mediatedDevice(uuid: string, options: SysfsOptions = {}): MediatedDeviceInfo {
  const u = checkUuid(uuid);
  const link = hostPath(options, `/sys/bus/mdev/devices/${u}`);
  if (!existsSync(link)) {
    const known = listMediatedDeviceUuids(options);
    throw new VfioError(`there is no mediated device ${u}`, {
      remedy: known.length
        ? `mediated devices here: ${known.join(", ")}`
        : "create one first: createMdev(parent, type) (vfio mdev create)",
    });
  }
  return readMediated(u, link, options);
}

/**
 * Creates an instance of type `type` on parent `parent` (writes its UUID to the type's `create`) and returns the
 * UUID. Checks first that the parent and type exist and that an instance is available.
 *
 * @throws {VfioError} for an unknown parent or type (naming the known ones), when none is available, when the
 *   UUID is taken, or when the kernel refuses.
 *
 * ```ts
 * import { createMdev } from "@vfio-ts/vfio/sysfs";
 * const uuid = createMdev("mtty", "mtty-1");
 * const fixed = createMdev("mtty", "mtty-2", { uuid: "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001" });
 * ```
 */
export function createMdev(parent: string, type: string, options: CreateMdevOptions = {}): string {
  const uuid = checkUuid(options.uuid ?? crypto.randomUUID());
  const types = mdevTypes(parent, options);
  const t = types.find((x) => x.id === type);
  if (!t) {
    throw new VfioError(`${parent} supports no mediated-device type "${type}"`, {
      remedy: types.length
        ? `its types: ${types.map((x) => `${x.id}${x.name ? ` (${x.name})` : ""}`).join(", ")}`
        : `${parent} lists no supported types`,
    });
  }
  if (t.availableInstances <= 0) {
    const others = types.filter((x) => x.availableInstances > 0).map((x) => `${x.id} (${x.availableInstances})`);
    throw new VfioError(`${parent} has no ${type} instance available (available_instances is 0)`, {
      remedy: `remove an instance first (${t.instances.length} of this type exist)` +
        (others.length ? `, or pick a type that has room: ${others.join(", ")}` : ""),
    });
  }
  if (existsSync(hostPath(options, `/sys/bus/mdev/devices/${uuid}`))) {
    throw new VfioError(`a mediated device ${uuid} already exists`, {
      remedy: "pick another UUID, or leave it out to get a random one",
    });
  }
  const file = join(parentDir(parent, options), "mdev_supported_types", type, "create");
  writeAttr(file, uuid, {
    purpose: `create a ${type} mediated device on ${parent}`,
    remedy: "see dmesg: the parent driver refused (out of resources, or the UUID is in use)",
  });
  return uuid;
}

/** UUIDs this process has open (see `lib/open_mdev.ts`): the kernel's remove would wait for them forever. */
const openHere = new Set<string>();

/**
 * Marks `uuid` open (or no longer open) in this process, so that {@linkcode removeMdev} refuses to hang and a
 * second open is refused clearly; `openMediatedDevice()` does this.
 *
 * ```ts
 * import { isMdevOpen, markMdevOpen } from "./mdev.ts";
 * markMdevOpen("83b8f4f2-509f-382f-3c1e-e6bfe0fa1001", true);
 * console.log(isMdevOpen("83b8f4f2-509f-382f-3c1e-e6bfe0fa1001")); // true
 * ```
 */
export function markMdevOpen(uuid: string, open: boolean): void {
  if (open) openHere.add(uuid.toLowerCase());
  else openHere.delete(uuid.toLowerCase());
}

/**
 * Whether this process has mediated device `uuid` open (through `openMediatedDevice()`).
 *
 * ```ts
 * import { isMdevOpen } from "@vfio-ts/vfio/sysfs";
 * console.log(isMdevOpen("83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"));
 * ```
 */
export function isMdevOpen(uuid: string): boolean {
  return openHere.has(uuid.toLowerCase());
}

/**
 * Removes mediated device `uuid` (writes `1` to its `remove`). The kernel waits until every user has closed it,
 * so this refuses while this process still has it open.
 *
 * @throws {VfioError} when there is no such device, it is open in this process, or the kernel refuses.
 *
 * ```ts
 * import { createMdev, removeMdev } from "@vfio-ts/vfio/sysfs";
 * removeMdev(createMdev("mtty", "mtty-1"));
 * ```
 */
export function removeMdev(uuid: string, options: SysfsOptions = {}): void {
  const m = mediatedDevice(uuid, options);
  if (openHere.has(m.uuid)) {
    throw new VfioError(`mediated device ${m.uuid} is open in this process`, {
      remedy: "close its Device first: the kernel's remove waits until every user has closed it",
    });
  }
  writeAttr(hostPath(options, `/sys/bus/mdev/devices/${m.uuid}/remove`), "1", {
    purpose: `remove mediated device ${m.uuid}`,
    remedy: "see dmesg",
  });
}
