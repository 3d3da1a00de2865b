/**
 * `openMediatedDevice()`: opens a mediated device (mdev) by its UUID as a {@linkcode Device}, with the same
 * regions, config space, IRQ sets and DMA API as a PCI device. Its group is an emulated-IOMMU group
 * (`Device.groupType === "emulated-iommu"`): the parent's kernel driver mediates every access, and no IOMMU
 * hardware is needed for either path.
 *
 * ```ts
 * import { openMediatedDevice } from "@vfio-ts/vfio";
 * import { createMdev, removeMdev } from "@vfio-ts/vfio";
 * const uuid = createMdev("mtty", "mtty-1");
 * {
 *   using dev = openMediatedDevice(uuid); // iommufd cdev when offered, else the group on a type1 container
 *   console.log(dev.groupType, dev.config.vendorId.toString(16)); // "emulated-iommu" "4348"
 * }
 * removeMdev(uuid);
 * ```
 * @module
 */
import { existsSync } from "node:fs";
import type { Device } from "./device.ts";
import { UnsupportedError, VfioError } from "./errors.ts";
import { Group } from "./group.ts";
import type { IommuChoice } from "./open.ts";
import { openThroughCdev, openThroughGroup } from "./open_paths.ts";
import { isMdevOpen, markMdevOpen, mediatedDevice } from "./sysfs/mdev.ts";

/**
 * The IOMMU path for a mediated device, the same choice as a PCI device's ({@linkcode IommuChoice}): `auto`
 * (default) takes the iommufd cdev when the kernel offers it, else the group on a type1 container;
 * `iommufd-compat` is the group with `/dev/iommu` as its container. A mediated device's group is never a no-IOMMU
 * group.
 */
export type MdevIommuChoice = IommuChoice;

const CHOICES: readonly MdevIommuChoice[] = ["auto", "type1", "iommufd", "iommufd-compat"];

/** Options of {@linkcode openMediatedDevice}. */
export interface OpenMediatedDeviceOptions {
  /** The IOMMU path (default `auto`). */
  iommu?: MdevIommuChoice;
  /** The sysfs root (tests). */
  sysfsRoot?: string;
  /** The VFIO group node directory (tests). */
  devDir?: string;
}

/**
 * Opens mediated device `uuid` through its group (type1 container, or `/dev/iommu` in the compat form) or its
 * iommufd cdev. Devices share containers and IOASes with PCI devices opened in the same process.
 *
 * The device is asked for its info once on open (`VFIO_DEVICE_GET_INFO`): some mdev drivers, mtty among them,
 * answer IRQ queries only after that.
 *
 * @throws {VfioError} when there is no such device, it is already open here, or it has no VFIO group;
 *   {@linkcode UnsupportedError} when the asked-for path is not offered.
 *
 * ```ts
 * import { IrqIndex } from "@vfio-ts/vfio";
 * import { openMediatedDevice } from "@vfio-ts/vfio";
 * using dev = openMediatedDevice("83b8f4f2-509f-382f-3c1e-e6bfe0fa1001", { iommu: "type1" });
 * const uart = dev.bar(0); // an I/O BAR: pread/pwrite
 * uart.write8(0, 0x41);
 * using msi = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
 * ```
 */
export function openMediatedDevice(uuid: string, options: OpenMediatedDeviceOptions = {}): Device {
  const choice = options.iommu ?? "auto";
  if (!CHOICES.includes(choice)) {
    throw new VfioError(`"${choice}" is not an IOMMU path for a mediated device`, {
      remedy: `use one of ${CHOICES.join(", ")} (mediated devices sit in emulated-IOMMU groups, never no-IOMMU ones)`,
    });
  }
  const info = mediatedDevice(uuid, { root: options.sysfsRoot });
  const name = info.uuid;
  if (isMdevOpen(name)) {
    throw new VfioError(`mediated device ${name} is already open in this process`, {
      remedy: "use the Device you have, or close it before opening the device again",
    });
  }
  if (info.iommuGroup === null) {
    throw new VfioError(
      `mediated device ${name} has no IOMMU group: its driver (${info.driver ?? "none"}) is not a VFIO driver`,
      {
        remedy: "only mediated devices whose parent driver registers them with VFIO can be opened",
      },
    );
  }
  const devDir = options.devDir ?? "/dev/vfio";
  const haveIommufd = existsSync("/dev/iommu");
  const cdev = info.vfioDevicePath;
  let device: Device;
  if (choice === "iommufd" || (choice === "auto" && cdev !== null && haveIommufd)) {
    if (cdev === null) {
      throw new UnsupportedError(`mediated device ${name} has no VFIO device cdev (/dev/vfio/devices/vfioN)`, {
        remedy: "the kernel lacks CONFIG_VFIO_DEVICE_CDEV: use iommu: type1",
      });
    }
    if (!haveIommufd) {
      throw new UnsupportedError("/dev/iommu does not exist: the kernel has no iommufd", {
        remedy: "modprobe iommufd, or use iommu: type1",
      });
    }
    device = openThroughCdev(name, cdev, { groupType: "emulated-iommu" });
  } else {
    if (!Group.locate(info.iommuGroup, devDir)) {
      throw new VfioError(`${devDir} has no node for group ${info.iommuGroup} of mediated device ${name}`, {
        remedy: "is /dev mounted (devtmpfs)? try: ls -l /dev/vfio",
      });
    }
    if (choice === "iommufd-compat" && !haveIommufd) {
      throw new UnsupportedError("/dev/iommu does not exist: no iommufd for the compat form", {
        remedy: "modprobe iommufd, or use iommu: type1",
      });
    }
    const path = choice === "iommufd-compat" ? "compat" : "type1";
    device = openThroughGroup(name, info.iommuGroup, { path, devDir, groupType: "emulated-iommu" });
  }
  try {
    device.info();
  } catch (e) {
    device.close();
    throw e;
  }
  markMdevOpen(name, true);
  device.own({ close: (): void => markMdevOpen(name, false) });
  return device;
}
