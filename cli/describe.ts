/**
 * Describing devices for people and for `--json`: ids and names from pci.ids, class, driver, group.
 *
 * ```ts
 * import { deviceName } from "./describe.ts";
 * import { pciDevice } from "@vfio-ts/vfio";
 * import { loadPciIds } from "@vfio-ts/vfio";
 * console.log(deviceName(pciDevice("00:05.0"), loadPciIds())); // "[8086:10d3] Intel Corporation 82574L …"
 * ```
 * @module
 */

import { hex, hexDigits } from "../lib/hex.ts";
import type { PciDeviceInfo } from "../lib/sysfs/pci.ts";
import type { PciIds } from "../lib/sysfs/pci_ids.ts";

/** `vendor:device` as four hex digits each. */
export function pciId(d: { vendor: number; device: number }): string {
  return `${hexDigits(d.vendor, 4)}:${hexDigits(d.device, 4)}`;
}

/** `[8086:10d3] Ethernet controller: Intel Corporation 82574L …`, with the numeric class when pci.ids lacks it. */
export function deviceName(d: PciDeviceInfo, ids: PciIds): string {
  const cls = ids.className(d.class) ?? `class ${hex(d.class, 6)}`;
  const vendor = ids.vendorName(d.vendor);
  const device = ids.deviceName(d.vendor, d.device);
  const names = [vendor, device].filter((x) => x !== null).join(" ");
  return `[${pciId(d)}] ${cls}${names ? `: ${names}` : ""}`;
}

/** The JSON shape of one device. */
export interface DeviceSummary {
  address: string;
  id: string;
  vendor: number;
  device: number;
  vendorName: string | null;
  deviceName: string | null;
  class: number;
  className: string | null;
  driver: string | null;
  driverOverride: string | null;
  iommuGroup: number | null;
  numaNode: number | null;
}

/** A device as `--json` shows it. */
export function deviceSummary(d: PciDeviceInfo, ids: PciIds): DeviceSummary {
  return {
    address: d.address,
    id: pciId(d),
    vendor: d.vendor,
    device: d.device,
    vendorName: ids.vendorName(d.vendor),
    deviceName: ids.deviceName(d.vendor, d.device),
    class: d.class,
    className: ids.className(d.class),
    driver: d.driver,
    driverOverride: d.driverOverride,
    iommuGroup: d.iommuGroup,
    numaNode: d.numaNode,
  };
}
