/**
 * Binding a PCI device to vfio-pci and putting its original driver back, through sysfs: `driver_override`,
 * the current driver's `unbind`, then `drivers_probe`. The original driver is recorded in a small state file
 * (`/run/vfio-ts/`, or `/tmp/vfio-ts/` when /run is not writable) so that another process can restore it.
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

import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NoIommuError, VfioError } from "../errors.ts";
import { parsePciAddress, type PciAddress } from "../pci_address.ts";
import { fsErrorCode, hostPath, readLinkName, type SysfsOptions, writeAttr } from "./attr.ts";
import { modprobe } from "./modprobe.ts";
import { noIommuStatus } from "./noiommu.ts";
import { pciDevice, type PciDeviceInfo } from "./pci.ts";

const VFIO_PCI = "vfio-pci";
const STATE_DIRS = ["/run/vfio-ts", "/tmp/vfio-ts"];

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
 * A step as the shell command that does the same thing.
 *
 * ```ts
 * import { describeStep } from "@vfio-ts/vfio/sysfs";
 * console.log(describeStep({ kind: "write", path: "/sys/bus/pci/drivers_probe", value: "0000:00:03.0", purpose: "" }));
 * // echo 0000:00:03.0 > /sys/bus/pci/drivers_probe
 * ```
 */
export function describeStep(step: SysfsStep): string {
  if (step.kind === "modprobe") return ["modprobe", step.module, ...step.params].join(" ");
  const value = step.value.trim();
  return value === "" ? `echo > ${step.path}` : `echo ${value} > ${step.path}`;
}

/** Options of {@linkcode bindToVfio}, {@linkcode unbind} and {@linkcode restoreDriver}. */
export interface BindOptions extends SysfsOptions {
  /** Return the steps without doing them. */
  dryRun?: boolean;
  /** Load vfio-pci with modprobe when it is not loaded (default `true`). */
  loadModule?: boolean;
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

/** The original driver of a device, as recorded when it was first bound to vfio-pci. */
export interface DriverRecord {
  /** Canonical address. */
  readonly address: string;
  /** The driver it had (`null`: none). */
  readonly driver: string | null;
  /** Its `driver_override` before (`null`: unset). */
  readonly driverOverride: string | null;
}

function statePaths(address: string, options: SysfsOptions): string[] {
  return STATE_DIRS.map((d) => join(hostPath(options, d), `${address}.json`));
}

/**
 * The original driver recorded for `address` by an earlier {@linkcode bindToVfio}, or `null` when none is recorded.
 *
 * ```ts
 * import { recordedDriver } from "@vfio-ts/vfio/sysfs";
 * console.log(recordedDriver("0000:00:03.0")?.driver); // "e1000e"
 * ```
 */
export function recordedDriver(address: string | PciAddress, options: SysfsOptions = {}): DriverRecord | null {
  const canonical = parsePciAddress(address).toString();
  for (const path of statePaths(canonical, options)) {
    try {
      const r = JSON.parse(readFileSync(path, "utf8")) as Partial<DriverRecord>;
      if (r.address === canonical) {
        return { address: canonical, driver: r.driver ?? null, driverOverride: r.driverOverride ?? null };
      }
    } catch {
      // missing or unreadable: try the next place
    }
  }
  return null;
}

function writeRecord(record: DriverRecord, options: SysfsOptions): void {
  const errors: unknown[] = [];
  for (const path of statePaths(record.address, options)) {
    try {
      mkdirSync(join(path, ".."), { recursive: true, mode: 0o755 });
      writeFileSync(path, JSON.stringify(record) + "\n", { mode: 0o644 });
      return;
    } catch (e) {
      errors.push(e);
    }
  }
  throw new VfioError(`cannot record the original driver of ${record.address} in ${STATE_DIRS.join(" or ")}`, {
    remedy: fsErrorCode(errors[0]) === "EACCES" ? "run as root" : "make /run or /tmp writable",
    cause: errors[0],
  });
}

function forgetRecord(address: string, options: SysfsOptions): void {
  for (const path of statePaths(address, options)) rmSync(path, { force: true });
}

function run(steps: readonly SysfsStep[], remedy: string): void {
  for (const step of steps) {
    if (step.kind === "modprobe") modprobe(step.module, step.params);
    else writeAttr(step.path, step.value, { purpose: step.purpose, remedy });
  }
}

function driverOf(address: string, options: SysfsOptions): string | null {
  return readLinkName(hostPath(options, `/sys/bus/pci/devices/${address}/driver`));
}

/** A process holding a VFIO node of a device open. */
export interface VfioHolder {
  /** Process id. */
  readonly pid: number;
  /** Its command name (`/proc/<pid>/comm`). */
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
  const holders: VfioHolder[] = [];
  let pids: string[] = [];
  try {
    pids = readdirSync(proc).filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(a) - Number(b));
  } catch {
    return [];
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(join(proc, pid, "fd"));
    } catch {
      continue; // gone, or not ours to look at
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(join(proc, pid, "fd", fd));
      } catch {
        continue;
      }
      if (!nodes.has(target)) continue;
      let command = "";
      try {
        command = readFileSync(join(proc, pid, "comm"), "utf8").trim();
      } catch {
        // exited meanwhile
      }
      holders.push({ pid: Number(pid), command, path: target });
    }
  }
  return holders;
}

function refuseWhileHeld(info: PciDeviceInfo, options: SysfsOptions): void {
  if (info.driver !== VFIO_PCI) return;
  const holders = vfioHolders(info.address, options);
  if (holders.length === 0) return;
  const who = holders.map((h) => `pid ${h.pid} (${h.command || "?"}) holds ${h.path}`).join(", ");
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
 * @throws {NoIommuError} the device has no IOMMU group and no-IOMMU mode is off.
 * @throws {VfioError} not root ("run as root"), modprobe missing or failing, or vfio-pci refused the device.
 *
 * ```ts
 * import { bindToVfio } from "@vfio-ts/vfio/sysfs";
 * const r = bindToVfio("0000:00:03.0");
 * console.log(`was on ${r.previousDriver ?? "no driver"}, IOMMU group ${r.device.iommuGroup}`);
 * ```
 */
export function bindToVfio(address: string | PciAddress, options: BindOptions = {}): BindResult {
  const before = pciDevice(address, options);
  const addr = before.address;
  const dryRun = options.dryRun === true;
  if (before.driver === VFIO_PCI) {
    return { address: addr, previousDriver: VFIO_PCI, alreadyBound: true, steps: [], dryRun, device: before };
  }
  const steps: SysfsStep[] = [];
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
  if (dryRun) {
    return { address: addr, previousDriver: before.driver, alreadyBound: false, steps, dryRun, device: before };
  }

  const recorded = recordedDriver(addr, options) === null;
  if (recorded) writeRecord({ address: addr, driver: before.driver, driverOverride: before.driverOverride }, options);
  const probe = steps.pop() as SysfsStep;
  try {
    run(steps, "see dmesg for the kernel's reason");
  } catch (e) {
    if (recorded && driverOf(addr, options) === before.driver) forgetRecord(addr, options); // nothing changed
    throw e;
  }
  let probeError: unknown;
  try {
    run([probe], "see dmesg for vfio-pci's reason");
  } catch (e) {
    probeError = e; // a failed probe may or may not be reported here; the driver link below is the truth
  }
  steps.push(probe);
  const after = pciDevice(addr, options);
  if (after.driver === VFIO_PCI) {
    return { address: addr, previousDriver: before.driver, alreadyBound: false, steps, dryRun, device: after };
  }

  let rolledBack = "";
  try {
    const r = restoreDriver(addr, options);
    rolledBack = `; put it back on ${r.driver ?? "no driver"}`;
  } catch {
    rolledBack = "; could not put the original driver back (see `vfio status`)";
  }
  const what = `${addr} did not bind to vfio-pci (driver now: ${after.driver ?? "none"})${rolledBack}`;
  if (before.iommuGroup === null && !noIommuStatus(options).enabled) {
    throw new NoIommuError(
      `${what}: it has no IOMMU group and VFIO no-IOMMU mode is off`,
      "turn the IOMMU on (intel_iommu=on / amd_iommu=on), or, on a test machine, enable no-IOMMU mode with " +
        "enableNoIommu({ iUnderstandTheRisk: true }) (`vfio noiommu enable`) and bind again",
    );
  }
  throw new VfioError(what, { remedy: "see dmesg for vfio-pci's reason", cause: probeError });
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
  const info = pciDevice(address, options);
  const dryRun = options.dryRun === true;
  const steps = info.driver === null ? [] : [unbindStep(info.address, info.driver, options)];
  if (!dryRun && steps.length > 0) {
    refuseWhileHeld(info, options);
    run(steps, "see dmesg for the kernel's reason");
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
 * recorded driver (or lets the kernel pick one), then forgets the record.
 *
 * ```ts
 * import { restoreDriver } from "@vfio-ts/vfio/sysfs";
 * const r = restoreDriver("0000:00:03.0");
 * console.log(`now on ${r.driver ?? "no driver"}`);
 * ```
 */
export function restoreDriver(address: string | PciAddress, options: RestoreOptions = {}): RestoreResult {
  const info = pciDevice(address, options);
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
    if (info.driver !== null) steps.push(unbindStep(addr, info.driver, options));
    if (target !== null) {
      const dir = hostPath(options, `/sys/bus/pci/drivers/${target}`);
      if (existsSync(dir)) {
        steps.push({ kind: "write", path: join(dir, "bind"), value: addr, purpose: `bind ${addr} to ${target}` });
      } else {
        steps.push({ kind: "modprobe", module: target, params: [], purpose: `load the ${target} driver` });
        steps.push(probeStep(addr, options));
      }
    }
  }
  if (dryRun) return { address: addr, driver: target, steps, dryRun };
  if (steps.some((s) => s.kind === "write" && s.path.endsWith("/unbind"))) refuseWhileHeld(info, options);
  run(steps, "see dmesg for the driver's reason");
  forgetRecord(addr, options);
  return { address: addr, driver: driverOf(addr, options), steps, dryRun };
}
