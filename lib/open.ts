/**
 * `openDevice()`: the one call that takes a PCI address from "bound to vfio-pci" to an open {@linkcode Device}:
 * it validates the address, checks the driver, picks the IOMMU path, opens (or shares) the container and group,
 * checks viability, sets the IOMMU model and gets the device fd — releasing everything it made if a step fails.
 *
 * ```ts
 * import { openDevice } from "./open.ts";
 * using dev = openDevice("0000:00:03.0");          // type1 through the IOMMU when there is one
 * using dev2 = openDevice("00:04.0", { noiommu: true }); // accept a no-IOMMU group explicitly
 * ```
 * @module
 */
import { existsSync } from "node:fs";
import { O_CLOEXEC, O_RDWR } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import { VFIO_NOIOMMU_IOMMU } from "./abi/vfio.ts";
import { Container } from "./container.ts";
import { Device, type Owned } from "./device.ts";
import { NoIommuError, NotBoundError, SystemError, UnsupportedError, VfioError } from "./errors.ts";
import { Group } from "./group.ts";
import { attachIoas, bindIommufd, type Ioas, Iommufd } from "./iommu/iommufd.ts";
import { IovaMapper } from "./iommu/iova_mapper.ts";
import { NoIommuMapper } from "./iommu/noiommu.ts";
import type { DmaMapper, IommuKind } from "./iommu/types.ts";
import { parsePciAddress } from "./pci_address.ts";
import { pciDevice } from "./sysfs/pci.ts";
import { checkNoIommuPrivileges } from "./sysfs/privileges.ts";

/** Which IOMMU path to use: `auto` (the default) picks the best the kernel offers for the device. */
export type IommuChoice = "auto" | IommuKind;

/** Options of {@linkcode openDevice}. */
export interface OpenDeviceOptions {
  /**
   * The IOMMU path. `auto` (default; or the `VFIO_TS_IOMMU` environment variable) takes type1 when the device's
   * group has an IOMMU, and no-IOMMU only when `noiommu` is also set.
   */
  iommu?: IommuChoice;
  /** Accept a no-IOMMU group: the device can DMA anywhere, unchecked, and the kernel is tainted. */
  noiommu?: boolean;
  /** The sysfs root (tests). */
  sysfsRoot?: string;
  /** The VFIO device node directory (tests). */
  devDir?: string;
}

/** A process-wide shared object with a reference count: containers and groups are shared between devices. */
class Shared<T extends Owned> implements Owned {
  #refs = 1;
  constructor(readonly value: T, readonly onLast: () => void) {}
  ref(): this {
    this.#refs++;
    return this;
  }
  close(): void {
    if (this.#refs === 0) return;
    if (--this.#refs === 0) {
      this.onLast();
      this.value.close();
    }
  }
}

interface IommuContext extends Owned {
  mapper: DmaMapper;
}

const contexts = new Map<string, Shared<IommuContext & { container?: Container; ioas?: Ioas; iommufd?: Iommufd }>>();
const groups = new Map<number, Shared<Group>>();
/** Addresses of the devices this process has open: the kernel's answers to a second open differ by path. */
const openAddresses = new Set<string>();

function environmentChoice(): IommuChoice | undefined {
  const v = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.VFIO_TS_IOMMU;
  if (v === undefined || v === "") return undefined;
  if (v === "auto" || v === "type1" || v === "noiommu" || v === "iommufd") return v;
  throw new VfioError(`VFIO_TS_IOMMU=${v} is not an IOMMU path`, { remedy: "use auto, type1, iommufd or noiommu" });
}

/** The process-wide container of a legacy IOMMU path (one IOVA space shared by the devices opened through it). */
function acquireContainer(kind: "type1" | "noiommu", devDir: string): Shared<IommuContext & { container: Container }> {
  const existing = contexts.get(kind);
  if (existing) return existing.ref() as Shared<IommuContext & { container: Container }>;
  const container = Container.open(`${devDir}/vfio`);
  const value = {
    container,
    mapper: kind === "noiommu" ? new NoIommuMapper() : new IovaMapper(container),
    close(): void {
      try {
        this.mapper.close();
      } finally {
        container.close();
      }
    },
  };
  const shared = new Shared(value, () => contexts.delete(kind));
  contexts.set(kind, shared);
  return shared;
}

/** The process-wide iommufd and IOAS of the cdev path. */
function acquireIoas(): Shared<IommuContext & { iommufd: Iommufd; ioas: Ioas }> {
  const existing = contexts.get("iommufd");
  if (existing) return existing.ref() as Shared<IommuContext & { iommufd: Iommufd; ioas: Ioas }>;
  const iommufd = Iommufd.open();
  let ioas: Ioas;
  try {
    ioas = iommufd.allocIoas();
  } catch (e) {
    iommufd.close();
    throw e;
  }
  const value = {
    iommufd,
    ioas,
    mapper: new IovaMapper(ioas),
    close(): void {
      try {
        this.mapper.close();
      } finally {
        iommufd.close();
      }
    },
  };
  const shared = new Shared(value, () => contexts.delete("iommufd"));
  contexts.set("iommufd", shared);
  return shared;
}

function acquireGroup(n: number, noiommu: boolean, devDir: string): Shared<Group> {
  const existing = groups.get(n);
  if (existing) return existing.ref();
  const shared = new Shared(Group.open(n, { noiommu, devDir }), () => groups.delete(n));
  groups.set(n, shared);
  return shared;
}

function closeAll(resources: Owned[]): void {
  for (const r of resources) {
    try {
      r.close();
    } catch { /* report the first error */ }
  }
}

/** Opens a device cdev, binds it to the shared iommufd and attaches it to the shared IOAS. */
function openThroughIommufd(address: string, cdevPath: string): Device {
  const cleanup: Owned[] = [];
  try {
    const ctx = acquireIoas();
    cleanup.unshift(ctx);
    let fd: number;
    try {
      fd = libc.open(cdevPath, O_RDWR | O_CLOEXEC);
    } catch (e) {
      if (e instanceof SystemError && e.code === "EBUSY") {
        throw new VfioError(`${address} is already open (through its group or its cdev)`, {
          remedy: "a device is opened once: close the other Device first",
          cause: e,
        });
      }
      throw e;
    }
    cleanup.unshift({ close: () => libc.close(fd, cdevPath) });
    bindIommufd(fd, ctx.value.iommufd, address);
    attachIoas(fd, ctx.value.ioas, address);
    cleanup.shift(); // the Device owns the fd now
    return new Device({ fd, name: address, iommu: "iommufd", mapper: ctx.value.mapper, after: cleanup });
  } catch (e) {
    closeAll(cleanup);
    throw e;
  }
}

/** Whether the iommufd cdev path can open this device: a `/dev/vfio/devices/vfioN` node and `/dev/iommu`. */
function iommufdAvailable(cdevPath: string | null, devRoot: string): boolean {
  return cdevPath !== null && existsSync(`${devRoot}/iommu`);
}

/**
 * Opens the VFIO device at `address` (`0000:00:03.0` or `00:03.0`).
 *
 * Devices opened this way share one container (and so one IOVA space) per IOMMU path, so a DMA buffer made
 * for one can be handed to another — what a forwarder between two NICs needs.
 *
 * ```ts
 * import { openDevice } from "./open.ts";
 * using dev = openDevice("0000:00:03.0");
 * console.log(dev.iommu, dev.info());
 * ```
 */
export function openDevice(address: string, options: OpenDeviceOptions = {}): Device {
  const canonical = parsePciAddress(address).toString();
  if (openAddresses.has(canonical)) {
    throw new VfioError(`${canonical} is already open in this process`, {
      remedy: "use the Device you have, or close it before opening the device again",
    });
  }
  const device = openUnchecked(canonical, options);
  openAddresses.add(canonical);
  device.own({ close: () => openAddresses.delete(canonical) });
  return device;
}

function openUnchecked(canonical: string, options: OpenDeviceOptions): Device {
  const devDir = options.devDir ?? "/dev/vfio";
  const sysfs = pciDevice(canonical, { root: options.sysfsRoot });
  if (sysfs.driver !== "vfio-pci") throw new NotBoundError(canonical, sysfs.driver);
  if (sysfs.iommuGroup === null) {
    throw new VfioError(`${canonical} has no IOMMU group`, {
      remedy: "enable the IOMMU (intel_iommu=on) or, knowingly, no-IOMMU mode (vfio noiommu enable)",
    });
  }
  const choice = options.iommu ?? environmentChoice() ?? "auto";
  const where = Group.locate(sysfs.iommuGroup, devDir);
  const cdev = sysfs.vfioDevicePath;
  if (choice === "iommufd" || (choice === "auto" && !where?.noiommu && iommufdAvailable(cdev, "/dev"))) {
    if (!cdev) {
      throw new UnsupportedError(`${canonical} has no VFIO device cdev (/dev/vfio/devices/vfioN)`, {
        remedy: where?.noiommu
          ? "no-IOMMU devices have no cdev (Linux 6.12): use the group path with { noiommu: true }"
          : "the kernel lacks CONFIG_VFIO_DEVICE_CDEV: use iommu: type1",
      });
    }
    if (!existsSync("/dev/iommu")) {
      throw new UnsupportedError("/dev/iommu does not exist: the kernel has no iommufd", {
        remedy: "modprobe iommufd, or use iommu: type1",
      });
    }
    return openThroughIommufd(canonical, cdev);
  }
  if (!where) {
    throw new VfioError(`${canonical} is bound to vfio-pci but ${devDir} has no node for group ${sysfs.iommuGroup}`, {
      remedy: "is /dev mounted (devtmpfs) and udev running? try: ls -l /dev/vfio",
    });
  }
  if (where.noiommu) {
    if (choice === "type1") {
      throw new UnsupportedError(`${canonical} is in no-IOMMU group ${sysfs.iommuGroup}: there is no IOMMU for type1`);
    }
    if (!options.noiommu && choice !== "noiommu") {
      throw new NoIommuError(
        `${canonical} is in no-IOMMU group ${sysfs.iommuGroup}: the device could DMA anywhere in memory, unchecked`,
        "pass { noiommu: true } (or --noiommu) to accept the risk; the kernel is tainted",
      );
    }
    checkNoIommuPrivileges();
  } else if (choice === "noiommu") {
    throw new NoIommuError(
      `${canonical} is behind an IOMMU (group ${sysfs.iommuGroup}); no-IOMMU mode was asked for`,
      "use the IOMMU (iommu: auto), it is the safe path",
    );
  }
  const kind = where.noiommu ? "noiommu" : "type1";
  const cleanup: Owned[] = [];
  try {
    const ctx = acquireContainer(kind, devDir);
    cleanup.unshift(ctx);
    const group = acquireGroup(sysfs.iommuGroup, where.noiommu, devDir);
    cleanup.unshift(group);
    group.value.setContainer(ctx.value.container);
    ctx.value.container.setIommu(where.noiommu ? VFIO_NOIOMMU_IOMMU : undefined);
    const fd = group.value.openDeviceFd(canonical);
    return new Device({ fd, name: canonical, iommu: kind, mapper: ctx.value.mapper, after: cleanup });
  } catch (e) {
    closeAll(cleanup);
    throw e;
  }
}
