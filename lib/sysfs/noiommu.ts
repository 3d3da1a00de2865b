/**
 * VFIO's no-IOMMU mode switch (`/sys/module/vfio/parameters/enable_unsafe_noiommu_mode`).
 *
 * In no-IOMMU mode vfio-pci accepts devices that have no IOMMU group by making a fake group
 * (`/dev/vfio/noiommu-N`). Nothing then checks the device's DMA: it can read and write any physical memory, DMA
 * addresses must be physical addresses, and the kernel is tainted. Use it on test machines and VMs, or when the
 * device and the program are trusted. Enabling it takes an explicit opt-in.
 *
 * ```ts
 * import { enableNoiommu, noiommuStatus } from "@vfio-ts/vfio/sysfs";
 * if (!noiommuStatus().enabled) enableNoiommu({ iUnderstandTheRisk: true });
 * ```
 * @module
 */

import { existsSync, readdirSync } from "node:fs";
import { NoiommuError } from "../errors.ts";
import { hostPath, readAttr, type SysfsOptions, writeAttr } from "./attr.ts";
import { isModuleLoaded, modprobe } from "./modprobe.ts";

const PARAMETER = "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode";

const RISK = "a device in no-IOMMU mode can DMA to any physical memory (nothing checks its addresses), " +
  "and binding one taints the kernel";

const NO_CONFIG_REMEDY = "use a kernel whose vfio is built with CONFIG_VFIO_NOIOMMU=y, or a machine (or VM) with " +
  "an IOMMU turned on (intel_iommu=on / amd_iommu=on on the kernel command line)";

/** The state of no-IOMMU mode. */
export interface NoiommuStatus {
  /** Whether the vfio module is loaded (or built in). */
  readonly vfioLoaded: boolean;
  /**
   * Whether the kernel offers no-IOMMU mode: the parameter exists (`true`), vfio is loaded without it (`false`:
   * built without CONFIG_VFIO_NOIOMMU), or vfio is not loaded so nobody can tell yet (`"unknown"`).
   */
  readonly supported: boolean | "unknown";
  /** Whether no-IOMMU mode is on (the parameter reads `Y`). */
  readonly enabled: boolean;
  /** The no-IOMMU groups that exist now (`/dev/vfio/noiommu-N`). */
  readonly groups: readonly number[];
  /** One sentence for people. */
  readonly summary: string;
}

/**
 * Reads the no-IOMMU mode state.
 *
 * ```ts
 * import { noiommuStatus } from "@vfio-ts/vfio/sysfs";
 * const s = noiommuStatus();
 * console.log(s.supported, s.enabled, s.summary);
 * ```
 */
export function noiommuStatus(options: SysfsOptions = {}): NoiommuStatus {
  const vfioLoaded = isModuleLoaded("vfio", options);
  const value = readAttr(hostPath(options, PARAMETER));
  const supported = value !== null ? true : vfioLoaded ? false : "unknown";
  const enabled = value !== null && /^(Y|1)/.test(value.trim());
  let groups: number[] = [];
  try {
    groups = readdirSync(hostPath(options, "/dev/vfio"))
      .map((n) => /^noiommu-(\d+)$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
  } catch {
    // no /dev/vfio: no groups
  }
  const summary = supported === "unknown"
    ? "unknown: the vfio module is not loaded (load vfio to find out, e.g. `modprobe vfio`)"
    : supported === false
    ? "not supported: this kernel's vfio is built without CONFIG_VFIO_NOIOMMU"
    : enabled
    ? `enabled (unsafe: ${RISK})`
    : "supported but disabled";
  return { vfioLoaded, supported, enabled, groups, summary };
}

/** Options of {@linkcode enableNoiommu}. */
export interface EnableNoiommuOptions extends SysfsOptions {
  /** The explicit opt-in: no-IOMMU mode gives the device unchecked DMA to all memory and taints the kernel. */
  iUnderstandTheRisk: true;
}

/**
 * Turns no-IOMMU mode on: writes `1` to the parameter, or loads vfio with `enable_unsafe_noiommu_mode=1` when it
 * is not loaded. Devices without an IOMMU group must be bound to vfio-pci (again) afterwards.
 *
 * @throws {NoiommuError} without the opt-in, or when the kernel lacks CONFIG_VFIO_NOIOMMU.
 * @throws {VfioError} when not root ("run as root") or modprobe fails.
 *
 * ```ts
 * import { enableNoiommu } from "@vfio-ts/vfio/sysfs";
 * const status = enableNoiommu({ iUnderstandTheRisk: true });
 * console.log(status.summary);
 * ```
 */
export function enableNoiommu(options: EnableNoiommuOptions): NoiommuStatus {
  if (options?.iUnderstandTheRisk !== true) {
    throw new NoiommuError(
      `refusing to enable VFIO no-IOMMU mode without the explicit opt-in: ${RISK}`,
      "pass { iUnderstandTheRisk: true } if this is a test machine or VM, or you trust the device and the program",
    );
  }
  let status = noiommuStatus(options);
  if (status.enabled) return status;
  if (!status.vfioLoaded) {
    modprobe("vfio", ["enable_unsafe_noiommu_mode=1"]);
    status = noiommuStatus(options);
    if (status.enabled) return status;
  }
  if (status.supported !== true) {
    throw new NoiommuError(
      "this kernel has no VFIO no-IOMMU mode (vfio is built without CONFIG_VFIO_NOIOMMU)",
      NO_CONFIG_REMEDY,
    );
  }
  writeAttr(hostPath(options, PARAMETER), "1", { purpose: "enable VFIO no-IOMMU mode" });
  status = noiommuStatus(options);
  if (!status.enabled) {
    throw new NoiommuError(
      "the kernel did not accept enabling no-IOMMU mode (the parameter still reads N)",
      NO_CONFIG_REMEDY,
    );
  }
  return status;
}

/**
 * Turns no-IOMMU mode off (writes `0`). No-IOMMU groups that exist stay usable until their devices are unbound.
 * A no-op when vfio is not loaded or has no such mode.
 *
 * ```ts
 * import { disableNoiommu } from "@vfio-ts/vfio/sysfs";
 * disableNoiommu();
 * ```
 */
export function disableNoiommu(options: SysfsOptions = {}): NoiommuStatus {
  const path = hostPath(options, PARAMETER);
  if (existsSync(path) && noiommuStatus(options).enabled) {
    writeAttr(path, "0", { purpose: "disable VFIO no-IOMMU mode" });
  }
  return noiommuStatus(options);
}
