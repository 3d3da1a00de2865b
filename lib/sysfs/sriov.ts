/**
 * SR-IOV through sysfs: a physical function's (PF's) SR-IOV capability and its virtual functions (VFs); creating
 * and destroying VFs (`sriov_numvfs`), refused while a VF is in use; VFs handed to vfio-pci through
 * `driver_override` before any driver probes them (`sriov_drivers_autoprobe` is 0 while they are created, then
 * put back). VFs bound this way have driver records and take the device lock like any other bind (`bind.ts`).
 *
 * ```ts
 * import { setVfCount, sriovStatus } from "@vfio-ts/vfio/sysfs";
 * const s = sriovStatus("0000:00:07.0");
 * console.log(`${s.numVfs}/${s.totalVfs} VFs (device ${s.vfDeviceId?.toString(16)})`);
 * const made = setVfCount("0000:00:07.0", 2, { bind: true }); // two VFs, both on vfio-pci
 * console.log(made.vfs.map((vf) => vf.address));
 * setVfCount("0000:00:07.0", 0); // refused while a VF is open
 * ```
 * @module
 */

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PCI_EXT_CAP_ID_SRIOV } from "../abi/pci.ts";
import * as pci from "../abi/pci.ts";
import { configReaderFromBytes, findCapability, walkCapabilities } from "../capabilities.ts";
import { UnsupportedError, VfioError, VfsInUseError, type VfUser } from "../errors.ts";
import { parsePciAddress, type PciAddress, pciAddress } from "../pci_address.ts";
import { hostPath, readAttr, readLinkName, readNumber, type SysfsOptions, writeAttr } from "./attr.ts";
import { type BindOptions, type BindResult, bindToVfio, type SysfsStep, vfioHolders } from "./bind.ts";
import { forgetDriverRecord } from "./driver_record.ts";
import { deviceUsers, SystemScan } from "./in_use.ts";
import { lockDevice } from "./lock.ts";
import { pciDevice, pciDevicePath } from "./pci.ts";

/** The SR-IOV extended capability of a PF, as its config space holds it. */
export interface SriovCapability {
  /** Offset of the capability in config space. */
  readonly offset: number;
  /** VFs the PF starts with (`InitialVFs`). */
  readonly initialVfs: number;
  /** VFs the PF can have (`TotalVFs`). */
  readonly totalVfs: number;
  /** VFs set up now (`NumVFs`). */
  readonly numVfs: number;
  /** VF Enable is set. */
  readonly vfEnable: boolean;
  /** Routing-id offset of the first VF from the PF (`First VF Offset`). */
  readonly firstVfOffset: number;
  /** Routing-id distance between consecutive VFs (`VF Stride`). */
  readonly vfStride: number;
  /** The VFs' device id. */
  readonly vfDeviceId: number;
  /** Page sizes the PF supports for VF BARs (bit n: 4 KiB << n). */
  readonly supportedPageSizes: number;
  /** The page size the system chose (same encoding). */
  readonly systemPageSize: number;
}

/**
 * Decodes the SR-IOV extended capability from config-space bytes (a sysfs `config` file read as root: 4096 bytes;
 * 256 bytes, as non-root reads, have no extended capabilities), or `null` when there is none.
 *
 * ```ts
 * import { parseSriovCapability } from "@vfio-ts/vfio/sysfs";
 * import { readFileSync } from "node:fs";
 * const cap = parseSriovCapability(readFileSync("/sys/bus/pci/devices/0000:00:07.0/config"));
 * console.log(cap?.totalVfs, cap?.firstVfOffset, cap?.vfStride);
 * ```
 */
export function parseSriovCapability(config: Uint8Array): SriovCapability | null {
  const cfg = configReaderFromBytes(config);
  const found = findCapability(walkCapabilities(cfg).capabilities, PCI_EXT_CAP_ID_SRIOV, true);
  if (found === undefined || found.offset + pci.PCI_EXT_CAP_SRIOV_SIZEOF > cfg.size) return null;
  const at = (reg: number): number => found.offset + reg;
  return {
    offset: found.offset,
    initialVfs: cfg.read16(at(pci.PCI_SRIOV_INITIAL_VF)),
    totalVfs: cfg.read16(at(pci.PCI_SRIOV_TOTAL_VF)),
    numVfs: cfg.read16(at(pci.PCI_SRIOV_NUM_VF)),
    vfEnable: (cfg.read16(at(pci.PCI_SRIOV_CTRL)) & pci.PCI_SRIOV_CTRL_VFE) !== 0,
    firstVfOffset: cfg.read16(at(pci.PCI_SRIOV_VF_OFFSET)),
    vfStride: cfg.read16(at(pci.PCI_SRIOV_VF_STRIDE)),
    vfDeviceId: cfg.read16(at(pci.PCI_SRIOV_VF_DID)),
    supportedPageSizes: cfg.read32(at(pci.PCI_SRIOV_SUP_PGSIZE)),
    systemPageSize: cfg.read32(at(pci.PCI_SRIOV_SYS_PGSIZE)),
  };
}

/**
 * The address of VF number `index` (0-based) of the PF at `pf`, from the capability's offset and stride (routing
 * ids: bus × 256 + devfn, so a VF may sit on a later bus); `null` when it would be beyond bus 255.
 *
 * ```ts
 * import { vfAddress } from "@vfio-ts/vfio/sysfs";
 * console.log(vfAddress("0000:00:07.0", 0x80, 2, 1)); // "0000:00:17.2"
 * ```
 */
export function vfAddress(
  pf: string | PciAddress,
  firstVfOffset: number,
  vfStride: number,
  index: number,
): string | null {
  const a = parsePciAddress(pf);
  const rid = a.bus * 256 + a.device * 8 + a.function + firstVfOffset + vfStride * index;
  if (rid > 0xffff) return null;
  return pciAddress(a.domain, rid >> 8, (rid >> 3) & 0x1f, rid & 7).toString();
}

/** One VF of a PF as sysfs shows it. */
export interface VfInfo {
  /** Its number (`virtfnN`). */
  readonly index: number;
  /** Its address. */
  readonly address: string;
  /** Its driver, or `null`. */
  readonly driver: string | null;
  /** Its `driver_override`, or `null`. */
  readonly driverOverride: string | null;
  /** Its IOMMU group, or `null`. */
  readonly iommuGroup: number | null;
}

/** A PF's SR-IOV state: sysfs attributes, the capability from config space (root only), its VFs. */
export interface SriovStatus {
  /** The PF's canonical address. */
  readonly address: string;
  /** The PF's driver (VFs are created through it; vfio-pci needs its `enable_sriov` parameter). */
  readonly driver: string | null;
  /** `sriov_totalvfs`. */
  readonly totalVfs: number;
  /** `sriov_numvfs`: VFs that exist now. */
  readonly numVfs: number;
  /** `sriov_drivers_autoprobe`: whether new VFs are probed by drivers at once (`null`: not shown). */
  readonly driversAutoprobe: boolean | null;
  /** The VFs' device id (`sriov_vf_device`, else the capability's). */
  readonly vfDeviceId: number | null;
  /** `sriov_offset` (routing-id offset of the first VF), else the capability's. */
  readonly firstVfOffset: number | null;
  /** `sriov_stride`, else the capability's. */
  readonly vfStride: number | null;
  /** The capability from config space, `null` when the config file is short (not root). */
  readonly capability: SriovCapability | null;
  /** The VFs that exist, by index. */
  readonly vfs: readonly VfInfo[];
}

function pfDir(address: string | PciAddress, options: SysfsOptions): { address: string; dir: string } {
  const info = pciDevice(address, options); // InvalidAddressError for a bad or absent device
  return { address: info.address, dir: info.sysfsPath };
}

/**
 * Whether the device is an SR-IOV PF (it has `sriov_totalvfs`).
 *
 * ```ts
 * import { isSriovPf } from "@vfio-ts/vfio/sysfs";
 * console.log(isSriovPf("0000:00:07.0")); // true for an igb
 * ```
 */
export function isSriovPf(address: string | PciAddress, options: SysfsOptions = {}): boolean {
  return readNumber(join(pfDir(address, options).dir, "sriov_totalvfs")) !== null;
}

/**
 * The PF of a VF (its `physfn` link), or `null` when the device is not a VF.
 *
 * ```ts
 * import { physicalFunction } from "@vfio-ts/vfio/sysfs";
 * console.log(physicalFunction("0000:00:17.0")); // "0000:00:07.0"
 * ```
 */
export function physicalFunction(address: string | PciAddress, options: SysfsOptions = {}): string | null {
  return readLinkName(join(pciDevicePath(address, options), "physfn"));
}

/**
 * The VFs of a PF that exist now (its `virtfnN` links), by index.
 *
 * ```ts
 * import { virtualFunctions } from "@vfio-ts/vfio/sysfs";
 * for (const vf of virtualFunctions("0000:00:07.0")) console.log(vf.index, vf.address, vf.driver ?? "-");
 * ```
 */
export function virtualFunctions(pf: string | PciAddress, options: SysfsOptions = {}): VfInfo[] {
  const { dir } = pfDir(pf, options);
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => /^virtfn\d+$/.test(n));
  } catch {
    return [];
  }
  const out: VfInfo[] = [];
  for (const name of names) {
    const address = readLinkName(join(dir, name));
    if (address === null) continue;
    const vf = pciDevice(address, options);
    out.push({
      index: Number(name.slice(6)),
      address: vf.address,
      driver: vf.driver,
      driverOverride: vf.driverOverride,
      iommuGroup: vf.iommuGroup,
    });
  }
  return out.sort((a, b) => a.index - b.index);
}

function readConfig(dir: string): Uint8Array | null {
  try {
    return readFileSync(join(dir, "config"));
  } catch {
    return null;
  }
}

/**
 * A PF's SR-IOV state.
 *
 * @throws {InvalidAddressError} bad address or no such device.
 * @throws {UnsupportedError} the device is not an SR-IOV PF.
 *
 * ```ts
 * import { sriovStatus } from "@vfio-ts/vfio/sysfs";
 * const s = sriovStatus("0000:00:07.0");
 * console.log(s.driver, s.numVfs, s.totalVfs, s.vfs.map((v) => `${v.address} ${v.driver ?? "-"}`));
 * ```
 */
export function sriovStatus(address: string | PciAddress, options: SysfsOptions = {}): SriovStatus {
  const { address: addr, dir } = pfDir(address, options);
  const totalVfs = readNumber(join(dir, "sriov_totalvfs"));
  if (totalVfs === null) {
    throw new UnsupportedError(`${addr} is not an SR-IOV physical function (it has no sriov_totalvfs)`, {
      remedy: physicalFunction(addr, options) !== null
        ? `it is a VF of ${physicalFunction(addr, options)}: name the PF`
        : "`vfio sriov` takes a PF: a device with the SR-IOV capability (lspci -vv shows it)",
    });
  }
  const config = readConfig(dir);
  const capability = config === null ? null : parseSriovCapability(config);
  const autoprobe = readAttr(join(dir, "sriov_drivers_autoprobe"));
  const hexAttr = (name: string): number | null => {
    const t = readAttr(join(dir, name));
    return t !== null && /^[0-9a-f]+$/i.test(t.trim()) ? parseInt(t.trim(), 16) : null;
  };
  return {
    address: addr,
    driver: readLinkName(join(dir, "driver")),
    totalVfs,
    numVfs: readNumber(join(dir, "sriov_numvfs")) ?? 0,
    driversAutoprobe: autoprobe === null ? null : autoprobe.trim() !== "0",
    vfDeviceId: hexAttr("sriov_vf_device") ?? capability?.vfDeviceId ?? null,
    firstVfOffset: readNumber(join(dir, "sriov_offset")) ?? capability?.firstVfOffset ?? null,
    vfStride: readNumber(join(dir, "sriov_stride")) ?? capability?.vfStride ?? null,
    capability,
    vfs: virtualFunctions(addr, options),
  };
}

/**
 * What keeps the PF's VFs from being destroyed: processes holding a VF's VFIO group or cdev, and (for VFs on
 * kernel drivers) the uses `deviceUsers` finds (an interface up, a mounted namespace …). Empty when none.
 *
 * ```ts
 * import { vfUsers } from "@vfio-ts/vfio/sysfs";
 * for (const u of vfUsers("0000:00:07.0")) console.log(u.address, u.description);
 * ```
 */
export function vfUsers(pf: string | PciAddress, options: SysfsOptions = {}): VfUser[] {
  const out: VfUser[] = [];
  const scan = new SystemScan(options);
  for (const vf of virtualFunctions(pf, options)) {
    for (const h of vfioHolders(vf.address, options)) {
      const description = `pid ${h.pid} (${h.command || "?"}) holds ${h.path}`;
      out.push({ address: vf.address, description, pid: h.pid, command: h.command, vfio: true });
    }
    if (vf.driver !== null && vf.driver !== "vfio-pci") {
      for (const u of deviceUsers(vf.address, options, scan)) {
        const { pid, command } = u.process ?? {};
        out.push({ address: vf.address, description: u.description, pid, command, vfio: false });
      }
    }
  }
  return out;
}

/** Options of {@linkcode setVfCount}. */
export interface SetVfCountOptions extends BindOptions {
  /**
   * Hand the new VFs to vfio-pci before any driver probes them: `sriov_drivers_autoprobe` is 0 while they are
   * created (then put back), and each VF is bound as {@linkcode bindToVfio} does (recorded, locked).
   */
  bind?: boolean;
  /** Destroy VFs whose kernel driver is in use (a VFIO user is never overridden). */
  force?: boolean;
  /**
   * When the PF is on vfio-pci: turn on vfio-pci's `enable_sriov` module parameter if it is off (without it the
   * kernel refuses to create VFs of a vfio-pci PF). Default `false`: refuse, naming the parameter.
   */
  enableVfioSriov?: boolean;
}

/** What {@linkcode setVfCount} did (or would do). */
export interface SetVfCountResult {
  /** The PF's canonical address. */
  readonly address: string;
  /** VFs before. */
  readonly previousVfs: number;
  /** VFs asked for. */
  readonly numVfs: number;
  /** The steps, in order (for VF binds: one `bindToVfio` plan per VF, after the VF exists). */
  readonly steps: readonly SysfsStep[];
  /** Whether this was a dry run. */
  readonly dryRun: boolean;
  /** The VFs afterwards (in a dry run: the addresses they will get, from offset and stride, when known). */
  readonly vfs: readonly VfInfo[];
  /** The VF binds, when `bind` was asked for (empty in a dry run). */
  readonly binds: readonly BindResult[];
}

const VFIO_SRIOV_PARAM = "/sys/module/vfio_pci/parameters/enable_sriov";

/**
 * Whether vfio-pci may create VFs of the PFs it owns (its `enable_sriov` parameter, writable at run time);
 * `null` when vfio-pci is not loaded (or the kernel lacks `CONFIG_PCI_IOV`).
 *
 * ```ts
 * import { vfioPciSriovEnabled } from "@vfio-ts/vfio/sysfs";
 * console.log(vfioPciSriovEnabled()); // false until: echo 1 > /sys/module/vfio_pci/parameters/enable_sriov
 * ```
 */
export function vfioPciSriovEnabled(options: SysfsOptions = {}): boolean | null {
  const v = readAttr(hostPath(options, VFIO_SRIOV_PARAM));
  return v === null ? null : v.trim() === "Y" || v.trim() === "1";
}

function write(path: string, value: string, purpose: string): SysfsStep {
  return { kind: "write", path, value, purpose };
}

/**
 * Sets the number of VFs of a PF (0 destroys them). Going from some VFs to another non-zero number passes through
 * 0, as the kernel requires. Refuses while a VF is in use ({@linkcode vfUsers}; a VF's VFIO user always, a kernel
 * driver's use unless `force`), since removing a VF that a process holds through VFIO blocks until it lets go.
 * Driver records of the VFs that go away are forgotten. With `bind`, new VFs go to vfio-pci before any other
 * driver sees them.
 *
 * @throws {UnsupportedError} not an SR-IOV PF, more VFs than `sriov_totalvfs`, or the PF has no driver.
 * @throws {VfsInUseError} a VF is in use; it names the VF and the holder.
 * @throws {VfioError} not root, or the PF's driver refused (see dmesg); a vfio-pci PF without `enable_sriov`.
 *
 * ```ts
 * import { setVfCount } from "@vfio-ts/vfio/sysfs";
 * const plan = setVfCount("0000:00:07.0", 2, { bind: true, dryRun: true });
 * console.log(plan.steps.map((s) => s.purpose));
 * ```
 */
export function setVfCount(pf: string | PciAddress, numVfs: number, options: SetVfCountOptions = {}): SetVfCountResult {
  const status = sriovStatus(pf, options);
  const addr = status.address;
  const dir = pciDevicePath(addr, options);
  if (!Number.isInteger(numVfs) || numVfs < 0 || numVfs > status.totalVfs) {
    throw new UnsupportedError(`${addr} cannot have ${numVfs} VFs`, {
      remedy: `give a whole number from 0 to ${status.totalVfs} (sriov_totalvfs)`,
    });
  }
  const dryRun = options.dryRun === true;
  const steps: SysfsStep[] = [];
  if (numVfs > 0 && status.driver === null) {
    throw new UnsupportedError(`${addr} has no driver: VFs are created through the PF's driver`, {
      remedy: `bind the PF to its driver (vfio restore ${addr}) or to vfio-pci with enable_sriov`,
    });
  }
  if (numVfs > 0 && status.driver === "vfio-pci" && vfioPciSriovEnabled(options) !== true) {
    if (options.enableVfioSriov !== true) {
      throw new VfioError(`${addr} is on vfio-pci, whose enable_sriov parameter is off: it refuses to create VFs`, {
        remedy: `echo 1 > ${VFIO_SRIOV_PARAM} (or pass enableVfioSriov / --enable-sriov), or load vfio-pci ` +
          "with enable_sriov=1; the PF's user-space driver must then set a VF token",
      });
    }
    steps.push(write(hostPath(options, VFIO_SRIOV_PARAM), "1", "let vfio-pci create VFs of the PFs it owns"));
  }
  const sysfsPath = (name: string): string => join(dir, name);
  if (status.numVfs !== numVfs && status.numVfs > 0) {
    steps.push(write(sysfsPath("sriov_numvfs"), "0", `destroy the ${status.numVfs} VFs of ${addr}`));
  }
  const bind = options.bind === true && numVfs > 0;
  const autoprobeOff = bind && status.numVfs !== numVfs && status.driversAutoprobe !== false;
  if (autoprobeOff) {
    steps.push(write(sysfsPath("sriov_drivers_autoprobe"), "0", "keep drivers from probing the new VFs"));
  }
  if (numVfs > 0 && status.numVfs !== numVfs) {
    steps.push(write(sysfsPath("sriov_numvfs"), String(numVfs), `create ${numVfs} VFs of ${addr}`));
  }
  if (autoprobeOff) {
    steps.push(write(sysfsPath("sriov_drivers_autoprobe"), "1", "let drivers probe new VFs again"));
  }
  const result = { address: addr, previousVfs: status.numVfs, numVfs, steps, dryRun };
  if (dryRun) {
    const offset = status.firstVfOffset;
    const stride = status.vfStride;
    const vfs = status.numVfs === numVfs ? status.vfs : Array.from({ length: numVfs }, (_, index) => {
      const address = offset === null || stride === null ? "?" : vfAddress(addr, offset, stride, index) ?? "?";
      return { index, address, driver: null, driverOverride: null, iommuGroup: null };
    });
    return { ...result, vfs, binds: [] };
  }

  using _lock = lockDevice(addr, options);
  if (status.numVfs !== numVfs) {
    const users = vfUsers(addr, options).filter((u) => u.vfio || options.force !== true);
    if (users.length > 0) throw new VfsInUseError(addr, users);
  }
  const gone = status.numVfs !== numVfs ? status.vfs : [];
  const remedy = "see dmesg for the PF driver's reason";
  let restoreAutoprobe = false;
  try {
    for (const s of steps) {
      if (s.kind !== "write") continue;
      if (s.path.endsWith("sriov_drivers_autoprobe") && s.value === "1") continue; // in finally, below
      writeAttr(s.path, s.value, { purpose: s.purpose, remedy });
      if (s.path.endsWith("sriov_drivers_autoprobe")) restoreAutoprobe = true;
      if (s.path.endsWith("sriov_numvfs") && s.value === "0") {
        gone.forEach((vf) => forgetDriverRecord(vf.address, options));
      }
      options.onStep?.(s.path.split("/").pop() as string);
    }
    const binds = bind ? virtualFunctions(addr, options).map((vf) => bindToVfio(vf.address, options)) : [];
    return { ...result, vfs: virtualFunctions(addr, options), binds };
  } finally {
    if (restoreAutoprobe) {
      writeAttr(sysfsPath("sriov_drivers_autoprobe"), "1", { purpose: "let drivers probe new VFs again", remedy });
    }
  }
}
