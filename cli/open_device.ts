/**
 * The one place a command turns its common options (`--iommu`, `--noiommu`, `--vf-token`) into an open device:
 * the options, their help text, and the opening.
 *
 * ```ts
 * import { openOptions } from "./open_device.ts";
 * openOptions({ iommu: "type1" }); // { iommu: "type1", noiommu: false, vfToken: undefined }
 * ```
 * @module
 */

import type { Device } from "../lib/device.ts";
import { type IommuChoice, openDevice, type OpenDeviceOptions } from "../lib/open.ts";
import type { PciDeviceInfo } from "../lib/sysfs/pci.ts";
import { type Options, UsageError, type Values } from "./common.ts";

/** Options that choose the IOMMU path for commands that open a device. */
export const OPEN_OPTIONS: Options = {
  iommu: { type: "string" },
  noiommu: { type: "boolean" },
  "vf-token": { type: "string" },
};

/** Help text of {@linkcode OPEN_OPTIONS}. */
export const OPEN_HELP = `  --iommu auto|type1|iommufd           IOMMU path to open the device through (default auto)
  --noiommu                            accept a no-IOMMU group (the device's DMA is unchecked): the one way to
                                       ask for no-IOMMU mode (auto then opens the group without an IOMMU)
  --vf-token UUID                      the VF token a VF of a PF owned through vfio-pci needs (its owner's)`;

/** The `openDevice` options from `--iommu`, `--noiommu` and `--vf-token`. */
export function openOptions(values: Values): OpenDeviceOptions {
  const iommu = values.iommu;
  if (iommu === "noiommu") {
    throw new UsageError("--iommu noiommu is not a way to ask for no-IOMMU mode", { remedy: "use --noiommu" });
  }
  if (iommu !== undefined && !["auto", "type1", "iommufd"].includes(String(iommu))) {
    throw new UsageError(`--iommu ${iommu} is not an IOMMU path`, { remedy: "use auto, type1 or iommufd" });
  }
  const vfToken = typeof values["vf-token"] === "string" ? values["vf-token"] : undefined;
  return { iommu: iommu as IommuChoice | undefined, noiommu: values.noiommu === true, vfToken };
}

/** Opens a command's (resolved) device through the IOMMU path its {@linkcode OPEN_OPTIONS} choose. */
export function openWithOptions(device: PciDeviceInfo, values: Values): Device {
  return openDevice(device.address, openOptions(values));
}
