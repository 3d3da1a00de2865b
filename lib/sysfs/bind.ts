/**
 * Binding a PCI device to vfio-pci and putting its original driver back, through sysfs: `driver_override`,
 * the current driver's `unbind`, then `drivers_probe`. The original driver is recorded in `/run/vfio-ts/` (see
 * `driver_record.ts`: only root-written records are trusted) so that another process can restore it, and every
 * change holds the device's lock (`lock.ts`), so two processes never change one device's driver at once. Driver
 * names from sysfs, records or callers are checked (`driver_name.ts`) before they reach a path or `modprobe`.
 *
 * A `dryRun` returns the writes instead of doing them, for people who want to see (or script) them.
 *
 * ```ts
 * import { bindToVfio, describeStep, restoreDriver } from "@vfio-ts/vfio/sysfs";
 * const plan = bindToVfio("0000:00:03.0", { dryRun: true });
 * plan.steps.forEach((s) => console.log(describeStep(s)));
 * const done = bindToVfio("0000:00:03.0"); // done.previousDriver === "e1000e"
 * // … use the device …
 * restoreDriver("0000:00:03.0");
 * ```
 * @module
 */

import { existsSync } from "node:fs";
import { basename, join } from "node:path";
import { NoiommuError, VfioError } from "../errors.ts";
import type { PciAddress } from "../pci_address.ts";
import { shellQuote } from "../shell_quote.ts";
import { hostPath, readLinkName, type SysfsOptions, writeAttr } from "./attr.ts";
import { checkDriverName, pciDriverSource } from "./driver_name.ts";
import { forgetDriverRecord, recordedDriver, writeDriverRecord } from "./driver_record.ts";
import { lockDevice, type LockOptions } from "./lock.ts";
import { modprobe } from "./modprobe.ts";
import { noiommuStatus } from "./noiommu.ts";
import { pciDevice, type PciDeviceInfo } from "./pci.ts";
import { openFds, processName } from "./proc_scan.ts";

export { type DriverRecord, recordedDriver } from "./driver_record.ts";

const VFIO_PCI = "vfio-pci";

/** One action on the system: a sysfs write or a module load. */
export type SysfsStep =
  | { readonly kind: "write"; readonly path: string; readonly value: string; readonly purpose: string }
  | {
    readonly kind: "modprobe";
    readonly module: string;
    readonly params: readonly string[];
    readonly purpose: string;
  };

/**
 * A step as the shell command that does the same thing, every word quoted for `sh` where needed.
 *
 * ```ts
 * import { describeStep } from "@vfio-ts/vfio/sysfs";
 * console.log(describeStep({ kind: "write", path: "/sys/bus/pci/drivers_probe", value: "0000:00:03.0", purpose: "" }));
 * // echo 0000:00:03.0 > /sys/bus/pci/drivers_probe
 * ```
 */
export function describeStep(step: SysfsStep): string {
  if (step.kind === "modprobe") return ["modprobe", step.module, ...step.params].map(shellQuote).join(" ");
  const value = step.value.trim();
  const path = shellQuote(step.path);
  if (value === "") return `echo > ${path}`;
  return value.startsWith("-")
    ? `printf '%s\\n' ${shellQuote(value)} > ${path}`
    : `echo ${shellQuote(value)} > ${path}`;
}

/** Options of {@linkcode bindToVfio}, {@linkcode unbind} and {@linkcode restoreDriver}. */
export interface BindOptions extends LockOptions {
  /** Return the steps without doing them. */
  dryRun?: boolean;
  /** Load vfio-pci with modprobe when it is not loaded (default `true`). */
  loadModule?: boolean;
  /**
   * Called after each change, with its name: `"record"` (the driver record is written), `"modprobe"`, or the sysfs
   * file written (`"driver_override"`, `"unbind"`, `"drivers_probe"`, `"bind"`). For tests that interrupt a bind
   * between steps; the device lock is held meanwhile.
   */
  onStep?: (name: string) => void;
}

/** What {@linkcode bindToVfio} did (or would do, in a dry run). */
export interface BindResult {
  /** Canonical address. */
  readonly address: string;
  /** The driver the device was on before (`null`: none). */
  readonly previousDriver: string | null;
  /** It was on vfio-pci already; nothing was done. */
  readonly alreadyBound: boolean;
  /** The steps, in order. */
  readonly steps: readonly SysfsStep[];
  /** Whether this was a dry run. */
  readonly dryRun: boolean;
  /** The device as sysfs shows it afterwards (before, in a dry run). */
  readonly device: PciDeviceInfo;
}

function run(steps: readonly SysfsStep[], remedy: string, onStep?: (name: string) => void): void {
  for (const step of steps) {
    if (step.kind === "modprobe") modprobe(step.module, step.params);
    else writeAttr(step.path, step.value, { purpose: step.purpose, remedy });
    onStep?.(step.kind === "modprobe" ? "modprobe" : basename(step.path));
  }
}

function driverOf(address: string, options: SysfsOptions): string | null {
  return readLinkName(hostPath(options, `/sys/bus/pci/devices/${address}/driver`));
}

/** The device as sysfs shows it, with its driver and driver_override checked before they are used in a path. */
function checkedDevice(address: string | PciAddress, options: SysfsOptions): PciDeviceInfo {
  const info = pciDevice(address, options);
  if (info.driver !== null) checkDriverName(info.driver, `the driver of ${info.address} in sysfs`);
  if (info.driverOverride !== null) checkDriverName(info.driverOverride, `the driver_override of ${info.address}`);
  return info;
}

/** A process holding a VFIO node of a device open. */
export interface VfioHolder {
  /** Process id. */
  readonly pid: number;
  /** Its command name (`/proc/<pid>/comm`), `?` when it exited meanwhile. */
  readonly command: string;
  /** The node it holds: the group (`/dev/vfio/7`, `/dev/vfio/noiommu-0`) or the cdev (`/dev/vfio/devices/vfio0`). */
  readonly path: string;
}

/**
 * The processes that hold the device's VFIO group node or device cdev open. Unbinding a device from vfio-pci waits
 * (in the kernel, indefinitely) until its users let go, so {@linkcode unbind} and {@linkcode restoreDriver} refuse
 * while this list is not empty. A process that kept only a device fd (and closed the group) is not seen.
 *
 * ```ts
 * import { vfioHolders } from "@vfio-ts/vfio/sysfs";
 * for (const h of vfioHolders("0000:00:03.0")) console.log(`${h.pid} (${h.command}) has ${h.path} open`);
 * ```
 */
export function vfioHolders(address: string | PciAddress, options: SysfsOptions = {}): VfioHolder[] {
  const info = pciDevice(address, options);
  const nodes = new Set<string>();
  if (info.iommuGroup !== null) {
    nodes.add(`/dev/vfio/${info.iommuGroup}`);
    nodes.add(`/dev/vfio/noiommu-${info.iommuGroup}`);
  }
  if (info.vfioDevice !== null) nodes.add(`/dev/vfio/devices/${info.vfioDevice}`);
  if (nodes.size === 0) return [];
  const proc = hostPath(options, "/proc");
  return [...openFds(proc)].filter((fd) => nodes.has(fd.target))
    .map((fd) => ({ pid: fd.pid, command: processName(proc, fd.pid), path: fd.target }));
}

function refuseWhileHeld(info: PciDeviceInfo, options: SysfsOptions): void {
  if (info.driver !== VFIO_PCI) return;
  const holders = vfioHolders(info.address, options);
  if (holders.length === 0) return;
  const who = holders.map((h) => `pid ${h.pid} (${h.command}) holds ${h.path}`).join(", ");
  throw new VfioError(`${info.address} is in use through VFIO: ${who}; unbinding it would block until they let go`, {
    remedy: "close the device (and its group) in those processes first, or stop them",
  });
}

function unbindStep(address: string, driver: string, options: SysfsOptions): SysfsStep {
  return {
    kind: "write",
    path: hostPath(options, `/sys/bus/pci/drivers/${driver}/unbind`),
    value: address,
    purpose: `unbind ${address} from ${driver}`,
  };
}

function probeStep(address: string, options: SysfsOptions): SysfsStep {
  return {
    kind: "write",
    path: hostPath(options, "/sys/bus/pci/drivers_probe"),
    value: address,
    purpose: `probe drivers for ${address}`,
  };
}

/**
 * Binds a device to vfio-pci: loads vfio-pci if needed, sets `driver_override`, unbinds the current driver and
 * asks the kernel to probe again; then checks that vfio-pci took it. The original driver is recorded for
 * {@linkcode restoreDriver}. Does nothing when the device is on vfio-pci already. If the bind fails the original
 * driver is put back before the error is thrown.
 *
 * Unbinding from the current driver waits until that driver lets go of the device.
 *
 * @throws {InvalidAddressError} bad address or no such device.
 * @throws {NoiommuError} the device has no IOMMU group and no-IOMMU mode is off.
 * @throws {InvalidDriverError} its driver or driver_override in sysfs is not a plain driver name.
 * @throws {UntrustedRecordError} its driver record (or `/run/vfio-ts`) is not one only root can have written.
 * @throws {RecordsDirError} `/run/vfio-ts` cannot be created (no fallback elsewhere).
 * @throws {DeviceLockedError} another process kept the device's lock for the whole `lockTimeoutMs`.
 * @throws {VfioError} not root ("run as root"), modprobe missing or failing, or vfio-pci refused the device.
 *
 * ```ts
 * import { bindToVfio } from "@vfio-ts/vfio/sysfs";
 * const r = bindToVfio("0000:00:03.0");
 * console.log(`was on ${r.previousDriver ?? "no driver"}, IOMMU group ${r.device.iommuGroup}`);
 * ```
 */
export function bindToVfio(address: string | PciAddress, options: BindOptions = {}): BindResult {
  const plan = bindPlan(checkedDevice(address, options), options); // checks names before anything is created
  if (options.dryRun === true || plan.result.alreadyBound) return plan.result;
  recordedDriver(plan.result.address, options); // an untrusted record is refused before the lock file is made
  using _lock = lockDevice(pciDevice(address, options).address, options);
  const { result, steps } = bindPlan(checkedDevice(address, options), options); // as it is now that we hold the lock
  if (result.alreadyBound) return result;
  const before = result.device;
  const addr = result.address;
  if (recordedDriver(addr, options) === null) {
    writeDriverRecord({ address: addr, driver: before.driver, driverOverride: before.driverOverride }, options);
    options.onStep?.("record");
  }
  const probe = steps.pop() as SysfsStep;
  try {
    run(steps, "see dmesg for the kernel's reason", options.onStep);
  } catch (e) {
    try {
      restoreLocked(addr, options);
    } catch (e2) {
      throw new SuppressedError(e2, e, `${addr}: the bind failed and putting the original driver back failed too`);
    }
    throw e;
  }
  let probeError: unknown;
  try {
    run([probe], "see dmesg for vfio-pci's reason", options.onStep);
  } catch (e) {
    probeError = e; // a failed probe may or may not be reported here; the driver link below is the truth
  }
  steps.push(probe);
  const after = pciDevice(addr, options);
  if (after.driver === VFIO_PCI) return { ...result, steps, device: after };

  let rolledBack = "";
  try {
    const r = restoreLocked(addr, options);
    rolledBack = `; put it back on ${r.driver ?? "no driver"}`;
  } catch {
    rolledBack = "; could not put the original driver back (see `vfio status`)";
  }
  const what = `${addr} did not bind to vfio-pci (driver now: ${after.driver ?? "none"})${rolledBack}`;
  if (before.iommuGroup === null && !noiommuStatus(options).enabled) {
    throw new NoiommuError(
      `${what}: it has no IOMMU group and VFIO no-IOMMU mode is off`,
      "turn the IOMMU on (intel_iommu=on / amd_iommu=on), or, on a test machine, enable no-IOMMU mode with " +
        "enableNoiommu({ iUnderstandTheRisk: true }) (`vfio noiommu enable`) and bind again",
    );
  }
  throw new VfioError(what, { remedy: "see dmesg for vfio-pci's reason", cause: probeError });
}

function bindPlan(before: PciDeviceInfo, options: BindOptions): { result: BindResult; steps: SysfsStep[] } {
  const addr = before.address;
  const dryRun = options.dryRun === true;
  const steps: SysfsStep[] = [];
  const result = { address: addr, previousDriver: before.driver, alreadyBound: false, steps, dryRun, device: before };
  if (before.driver === VFIO_PCI) return { result: { ...result, previousDriver: VFIO_PCI, alreadyBound: true }, steps };
  if (!existsSync(hostPath(options, `/sys/bus/pci/drivers/${VFIO_PCI}`))) {
    if (options.loadModule === false) {
      throw new VfioError("the vfio-pci driver is not loaded", { remedy: "load it: modprobe vfio-pci" });
    }
    steps.push({ kind: "modprobe", module: VFIO_PCI, params: [], purpose: "load the vfio-pci driver" });
  }
  if (before.driverOverride !== VFIO_PCI) {
    steps.push({
      kind: "write",
      path: join(before.sysfsPath, "driver_override"),
      value: VFIO_PCI,
      purpose: `make vfio-pci the only driver that may take ${addr}`,
    });
  }
  if (before.driver !== null) steps.push(unbindStep(addr, before.driver, options));
  steps.push(probeStep(addr, options));
  return { result: { ...result, steps: [...steps] }, steps };
}

/** What {@linkcode unbind} did. */
export interface UnbindResult {
  /** Canonical address. */
  readonly address: string;
  /** The driver it was on (`null`: none, nothing done). */
  readonly previousDriver: string | null;
  /** The steps, in order. */
  readonly steps: readonly SysfsStep[];
  /** Whether this was a dry run. */
  readonly dryRun: boolean;
}

/**
 * Unbinds a device from its driver (nothing when it has none). `driver_override` is left as is, so a device
 * bound with {@linkcode bindToVfio} goes back to vfio-pci on the next probe. Refuses (rather than hang) while a
 * process holds the device's VFIO group or cdev open; see {@linkcode vfioHolders}.
 *
 * ```ts
 * import { unbind } from "@vfio-ts/vfio/sysfs";
 * console.log(unbind("0000:00:03.0").previousDriver); // "vfio-pci"
 * ```
 */
export function unbind(address: string | PciAddress, options: BindOptions = {}): UnbindResult {
  const dryRun = options.dryRun === true;
  using _lock = dryRun ? null : lockDevice(checkedDevice(address, options).address, options);
  const info = checkedDevice(address, options); // as it is now that we hold the lock
  const steps = info.driver === null ? [] : [unbindStep(info.address, info.driver, options)];
  if (!dryRun && steps.length > 0) {
    refuseWhileHeld(info, options);
    run(steps, "see dmesg for the kernel's reason", options.onStep);
  }
  return { address: info.address, previousDriver: info.driver, steps, dryRun };
}

/** Options of {@linkcode restoreDriver}. */
export interface RestoreOptions extends BindOptions {
  /**
   * The driver to bind (`null`: leave it unbound). Default: the recorded original driver; when nothing is
   * recorded, whatever driver the kernel picks once `driver_override` is cleared.
   */
  driver?: string | null;
}

/** What {@linkcode restoreDriver} did. */
export interface RestoreResult {
  /** Canonical address. */
  readonly address: string;
  /** The driver the device is on now (in a dry run: the one it should end up on, `undefined` if the kernel picks). */
  readonly driver: string | null | undefined;
  /** The steps, in order. */
  readonly steps: readonly SysfsStep[];
  /** Whether this was a dry run. */
  readonly dryRun: boolean;
}

/**
 * Gives a device back to its original driver: restores `driver_override`, unbinds it from vfio-pci and binds the
 * recorded driver (or lets the kernel pick one), then forgets the record. This also clears what an interrupted
 * bind left: a pending `driver_override` and the record. The driver to bind (recorded or given) must be a loaded
 * PCI driver or a module of the running kernel; the record must be one only root can have written.
 *
 * @throws {InvalidDriverError} the driver is not a plain name, or this kernel has no such driver or module.
 * @throws {UntrustedRecordError} the record (or `/run/vfio-ts`) is not one only root can have written.
 * @throws {DeviceLockedError} another process kept the device's lock for the whole `lockTimeoutMs`.
 *
 * ```ts
 * import { restoreDriver } from "@vfio-ts/vfio/sysfs";
 * const r = restoreDriver("0000:00:03.0");
 * console.log(`now on ${r.driver ?? "no driver"}`);
 * ```
 */
export function restoreDriver(address: string | PciAddress, options: RestoreOptions = {}): RestoreResult {
  const plan = restorePlan(checkedDevice(address, options), options); // checks names before anything is created
  if (options.dryRun === true) return plan.result;
  using _lock = lockDevice(pciDevice(address, options).address, options);
  return restoreLocked(address, options);
}

/** {@linkcode restoreDriver} with the device's lock held by the caller. */
function restoreLocked(address: string | PciAddress, options: RestoreOptions): RestoreResult {
  const info = checkedDevice(address, options);
  const { result, steps } = restorePlan(info, { ...options, dryRun: false });
  if (steps.some((s) => s.kind === "write" && s.path.endsWith("/unbind"))) refuseWhileHeld(info, options);
  run(steps, "see dmesg for the driver's reason", options.onStep);
  forgetDriverRecord(info.address, options);
  return { ...result, driver: driverOf(info.address, options) };
}

function restorePlan(info: PciDeviceInfo, options: RestoreOptions): { result: RestoreResult; steps: SysfsStep[] } {
  const addr = info.address;
  const dryRun = options.dryRun === true;
  const record = recordedDriver(addr, options);
  const target = options.driver !== undefined ? options.driver : record ? record.driver : undefined;
  const override = record?.driverOverride ?? null;
  const steps: SysfsStep[] = [];
  if (info.driverOverride !== override) {
    steps.push({
      kind: "write",
      path: join(info.sysfsPath, "driver_override"),
      value: override ?? "\n",
      purpose: override ? `restore the driver_override of ${addr}` : `clear the driver_override of ${addr}`,
    });
  }
  if (target === undefined) {
    // nothing recorded: take it off vfio-pci and let the kernel pick its driver
    if (info.driver === VFIO_PCI) steps.push(unbindStep(addr, info.driver, options));
    if (info.driver === null || info.driver === VFIO_PCI) steps.push(probeStep(addr, options));
  } else if (info.driver !== target) {
    const source = target === null ? null : pciDriverSource(target, options, "the driver to restore");
    if (info.driver !== null) steps.push(unbindStep(addr, info.driver, options));
    if (target !== null && source === "loaded") {
      const path = hostPath(options, `/sys/bus/pci/drivers/${target}/bind`);
      steps.push({ kind: "write", path, value: addr, purpose: `bind ${addr} to ${target}` });
    } else if (target !== null) {
      steps.push({ kind: "modprobe", module: target, params: [], purpose: `load the ${target} driver` });
      steps.push(probeStep(addr, options));
    }
  }
  return { result: { address: addr, driver: target, steps, dryRun }, steps };
}
