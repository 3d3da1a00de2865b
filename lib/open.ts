/**
 * `openDevice()`: the one call that takes a PCI address from "bound to vfio-pci" to an open {@linkcode Device}:
 * it validates the address, checks the driver, picks the IOMMU path, opens (or shares) the container and group,
 * checks viability, sets the IOMMU model and gets the device fd — releasing everything it made if a step fails.
 *
 * ```ts
 * import { openDevice } from "@vfio-ts/vfio";
 * using dev = openDevice("0000:00:03.0");          // iommufd, else type1 through the IOMMU
 * using dev2 = openDevice("00:04.0", { noiommu: true }); // accept a no-IOMMU group explicitly
 * ```
 * @module
 */
import { existsSync } from "node:fs";
import type { Device } from "./device.ts";
import { GroupNotViableError, NoiommuError, NotBoundError, UnsupportedError, VfioError } from "./errors.ts";
import { Group } from "./group.ts";
import type { IovaSpace } from "./iova_space.ts";
import { openThroughCdev, openThroughGroup } from "./open_paths.ts";
import { parsePciAddress } from "./pci_address.ts";
import { hostPath, readLinkName } from "./sysfs/attr.ts";
import { groupViabilityBlockers } from "./sysfs/iommu_group.ts";
import { pciDevice } from "./sysfs/pci.ts";
import { checkNoiommuPrivileges } from "./sysfs/privileges.ts";
import { checkVfToken } from "./vf_token.ts";

/**
 * Which IOMMU path to use: `auto` (the default) picks the best the kernel offers for the device; `iommufd` is the
 * device cdev bound to `/dev/iommu`; `iommufd-compat` the legacy group with `/dev/iommu` as its container; `type1`
 * the legacy group and container. A no-IOMMU group is not a path to choose: `auto` opens one when
 * {@linkcode OpenDeviceOptions.noiommu} accepts it.
 */
export type IommuChoice = "auto" | "iommufd" | "iommufd-compat" | "type1";

const CHOICES: readonly IommuChoice[] = ["auto", "iommufd", "iommufd-compat", "type1"];

/** Options of {@linkcode openDevice}. */
export interface OpenDeviceOptions {
  /**
   * The IOMMU path. `auto` (default; or the `VFIO_TS_IOMMU` environment variable) takes the iommufd cdev path when
   * the kernel offers it (`/dev/vfio/devices/vfioN` and `/dev/iommu`), else the legacy group path (type1), and a
   * no-IOMMU group only when `noiommu` is set. The environment may choose among these safe paths only.
   */
  iommu?: IommuChoice;
  /**
   * Accept a no-IOMMU group: the device can DMA anywhere, unchecked, and the kernel is tainted. This flag (the
   * `vfio` command line's `--noiommu`) is the one way to ask for no-IOMMU mode; a device behind an IOMMU still
   * opens through it.
   */
  noiommu?: boolean;
  /**
   * The lowest IOVA DMA buffers get (default 64 KiB; or the `VFIO_TS_IOVA_BASE` environment variable, hex or
   * decimal), e.g. `0x1_0000_0000n` so every bus address has non-zero upper 32 bits. It must lie inside the IOVA
   * ranges the kernel reports, else the open throws `OutOfRangeError` naming them. Devices sharing an IOVA space
   * must agree on it. Ignored in no-IOMMU mode (bus addresses are physical addresses there).
   */
  iovaBase?: bigint;
  /**
   * A caller-owned IOVA space (`createIovaSpace()`) to open the device into, instead of the process-wide one: its
   * kind decides the path (`iommufd`: the device cdev; `type1`: the legacy group). Not for no-IOMMU devices.
   */
  space?: IovaSpace;
  /**
   * The SR-IOV VF token (a UUID) a VF of a PF owned through vfio-pci needs: the one the PF's owner set with
   * `Device.setVfToken`. A missing or wrong token is a `VfTokenError` naming the PF. Linux 6.12's device cdev path
   * checks no token (its `VFIO_DEVICE_BIND_IOMMUFD` has no token field), so such VFs, and any open with a token, take
   * the group path (`iommufd-compat` when `/dev/iommu` exists, else `type1`); `iommu: "iommufd"` is refused for them.
   */
  vfToken?: string;
  /** The sysfs root (tests). */
  sysfsRoot?: string;
  /** The VFIO device node directory (tests). */
  devDir?: string;
}

const ASK_FOR_NOIOMMU = "pass { noiommu: true } to openDevice (--noiommu on the vfio command line) to accept that " +
  "the device's DMA is unchecked and the kernel tainted";

/** The path from the code, else the environment; `noiommu` there is refused: `{ noiommu: true }` is the one way. */
function chosenPath(address: string, options: OpenDeviceOptions): IommuChoice {
  const fromCode = options.iommu as string | undefined;
  const v = fromCode ??
    (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.VFIO_TS_IOMMU;
  if (v === undefined || v === "") return "auto";
  if (CHOICES.includes(v as IommuChoice)) return v as IommuChoice;
  const named = fromCode === undefined ? `VFIO_TS_IOMMU=${v}` : `iommu: "${v}"`;
  if (v === "noiommu") {
    throw new NoiommuError(`${address}: ${named} is not a way to ask for no-IOMMU mode`, ASK_FOR_NOIOMMU);
  }
  throw new VfioError(`${named} is not an IOMMU path`, { remedy: `use one of ${CHOICES.join(", ")}` });
}

/** Whether the device is a VF whose PF is on vfio-pci (its user may have set a VF token). */
function vfOfVfioPf(address: string, sysfsRoot?: string): boolean {
  const pf = readLinkName(hostPath({ root: sysfsRoot }, `/sys/bus/pci/devices/${address}/physfn`));
  return pf !== null && readLinkName(hostPath({ root: sysfsRoot }, `/sys/bus/pci/devices/${pf}/driver`)) === "vfio-pci";
}

/** The refusal of the cdev path for a VF token (Linux 6.12 checks none there). */
function noTokenOnCdev(address: string): UnsupportedError {
  return new UnsupportedError(
    `${address}: the device cdev path cannot carry a VF token: Linux 6.12's VFIO_DEVICE_BIND_IOMMUFD has no token ` +
      "field and checks none, so a VF of a vfio-pci-owned PF would open there without its owner's consent",
    { remedy: 'use the group path: iommu: "iommufd-compat" or "type1" (or leave iommu at "auto", which picks it)' },
  );
}

/** Addresses of the devices this process has open: the kernel's answers to a second open differ by path. */
const openAddresses = new Set<string>();

/**
 * Opens the VFIO device at `address` (`0000:00:03.0` or `00:03.0`).
 *
 * Devices opened this way share one container (and so one IOVA space) per IOMMU path, so a DMA buffer made
 * for one can be handed to another — what a forwarder between two NICs needs.
 *
 * ```ts
 * import { openDevice } from "@vfio-ts/vfio";
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
  const group = sysfs.iommuGroup;
  // a caller-owned space decides the path unless the caller names one
  const spaceChoice = options.space && options.iommu === undefined ? options.space.kind : undefined;
  const choice = spaceChoice ?? chosenPath(canonical, options);
  const where = Group.locate(group, devDir);
  const cdev = sysfs.vfioDevicePath;
  const haveIommufd = existsSync("/dev/iommu");
  const vfToken = options.vfToken === undefined ? undefined : checkVfToken(options.vfToken);
  const tokenPath = vfToken !== undefined || vfOfVfioPf(canonical, options.sysfsRoot);
  if (tokenPath && choice === "iommufd" && options.iommu === "iommufd") throw noTokenOnCdev(canonical);
  const onCdev = choice === "iommufd" || (choice === "auto" && !where?.noiommu && cdev !== null && haveIommufd);
  if (onCdev && !tokenPath) {
    if (!cdev) {
      throw new UnsupportedError(`${canonical} has no VFIO device cdev (/dev/vfio/devices/vfioN)`, {
        remedy: where?.noiommu
          ? "no-IOMMU devices have no cdev (Linux 6.12): use the group path with { noiommu: true }"
          : "the kernel lacks CONFIG_VFIO_DEVICE_CDEV: use iommu: type1",
      });
    }
    if (!haveIommufd) {
      throw new UnsupportedError("/dev/iommu does not exist: the kernel has no iommufd", {
        remedy: "modprobe iommufd, or use iommu: type1",
      });
    }
    // The kernel answers a bind in a non-viable group with a bare EPERM: name the members instead.
    const blockers = groupViabilityBlockers(group, { root: options.sysfsRoot });
    if (blockers.length) throw new GroupNotViableError(group, blockers);
    return openThroughCdev(canonical, cdev, { iovaBase: options.iovaBase, space: options.space });
  }
  if (!where) {
    throw new VfioError(`${canonical} is bound to vfio-pci but ${devDir} has no node for group ${group}`, {
      remedy: "is /dev mounted (devtmpfs) and udev running? try: ls -l /dev/vfio",
    });
  }
  if (where.noiommu) {
    if (options.space) {
      throw new UnsupportedError(`${canonical} is in no-IOMMU group ${group}: it has no IOVA space to join`, {
        remedy: "open it without { space } (its bus addresses are physical addresses)",
      });
    }
    if (choice === "type1" || choice === "iommufd-compat") {
      throw new UnsupportedError(`${canonical} is in no-IOMMU group ${group}: there is no IOMMU for ${choice}`, {
        remedy: "open it with { noiommu: true }, knowing that its DMA is unchecked",
      });
    }
    if (!options.noiommu) {
      throw new NoiommuError(
        `${canonical} is in no-IOMMU group ${group}: the device could DMA anywhere in memory, unchecked`,
        ASK_FOR_NOIOMMU,
      );
    }
    checkNoiommuPrivileges({ root: options.sysfsRoot });
    return openThroughGroup(canonical, group, { path: "noiommu", devDir, vfToken });
  }
  if (choice === "iommufd-compat" && !haveIommufd) {
    throw new UnsupportedError("/dev/iommu does not exist: no iommufd for the compat form", {
      remedy: "modprobe iommufd, or use iommu: type1",
    });
  }
  const compat = choice === "iommufd-compat" || (tokenPath && choice !== "type1" && haveIommufd);
  const path = compat ? "compat" : "type1";
  return openThroughGroup(canonical, group, {
    path,
    devDir,
    iovaBase: options.iovaBase,
    space: options.space,
    vfToken,
  });
}
