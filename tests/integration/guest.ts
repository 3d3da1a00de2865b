/**
 * What the VM rig tells an integration test about its guest (see tests/vm/README.md), read in one place: the
 * mode, the first device of each kind, the devices left on kernel drivers, and a device opener for the mode.
 *
 * ```ts
 * import { guest, openInGuest, skipIf } from "./guest.ts";
 * // test("...", { skip: skipIf(guest.edu, "edu") }, () => { using dev = openInGuest(guest.edu!); });
 * ```
 * @module
 */
import process from "node:process";
import type { Device } from "../../lib/device.ts";
import { openDevice } from "../../lib/open.ts";

const env = process.env;
const all = (v: string | undefined): string[] => (v ?? "").split(",").filter(Boolean);

/** The guest as the rig describes it (all `undefined`/empty outside the VM). */
export const guest = {
  /** Running inside the rig's guest. */
  inVm: env.VFIO_TS_IN_VM === "1",
  /** `noiommu`, `iommu` or `iommufd`. */
  mode: env.VFIO_TS_MODE ?? "",
  /** The first edu on vfio-pci. */
  edu: all(env.VFIO_TS_EDU)[0] as string | undefined,
  /** Every device on vfio-pci, by kind. */
  devices: {
    edu: all(env.VFIO_TS_EDU),
    nvme: all(env.VFIO_TS_NVME),
    e1000e: all(env.VFIO_TS_E1000E),
    virtioNet: all(env.VFIO_TS_VIRTIO_NET),
  },
  /** The first nvme on vfio-pci. */
  nvme: all(env.VFIO_TS_NVME)[0] as string | undefined,
  /** The first e1000e on vfio-pci. */
  e1000e: all(env.VFIO_TS_E1000E)[0] as string | undefined,
  /** The first legacy virtio-net on vfio-pci. */
  virtioNet: all(env.VFIO_TS_VIRTIO_NET)[0] as string | undefined,
  /** Devices the rig left on their kernel drivers. */
  kernelDevices: all(env.VFIO_TS_KERNEL_DEVICES),
};

/** A `skip` value for `node:test`: outside the guest, or when the guest has no `what` at `address`. */
export function skipIf(address: string | undefined, what: string): string | false {
  if (!guest.inVm) return "outside the VM rig (VFIO_TS_IN_VM unset)";
  return address ? false : `no ${what} in the guest`;
}

/** Opens a device through the library on the IOMMU path the rig's mode offers (no-IOMMU opted into there). */
export function openInGuest(address: string): Device {
  return openDevice(address, { noiommu: guest.mode === "noiommu" });
}
