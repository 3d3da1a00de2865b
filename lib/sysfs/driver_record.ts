/**
 * Driver records: the driver (and `driver_override`) a device had before {@linkcode bindToVfio} moved it to
 * vfio-pci, kept in `/run/vfio-ts/<address>.json` so that another process can put it back.
 *
 * Root acts on these files, so only root may have written them: the directory must be a real directory (not a
 * link) owned by root and not writable by group or others (it is created with mode 0700), and so must its parent;
 * a record must be a regular root-owned file not writable by others, opened without following links, and hold
 * plain driver names. Anything else is an {@linkcode UntrustedRecordError}. Records are written to a file created
 * exclusively in that directory and renamed into place. When `/run` is not writable there is no fallback: a
 * {@linkcode RecordsDirError} says so.
 *
 * ```ts
 * import { recordedDriver } from "@vfio-ts/vfio/sysfs";
 * console.log(recordedDriver("0000:00:03.0")?.driver); // "e1000e"
 * ```
 * @module
 */

import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  type Stats,
  statSync,
  unlinkSync,
} from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { RecordsDirError, UntrustedRecordError, VfioError } from "../errors.ts";
import { parsePciAddress, type PciAddress } from "../pci_address.ts";
import { writeAllSync } from "../write_all.ts";
import { fsErrorCode, hostPath, type SysfsOptions } from "./attr.ts";
import { checkDriverName } from "./driver_name.ts";

/** Where driver records and device locks live. */
export const RECORDS_DIR = "/run/vfio-ts";

/** Largest record accepted (a real one is under 100 bytes). */
const MAX_RECORD_BYTES = 4096;

/** Options of everything that reads or writes driver records. */
export interface RecordOptions extends SysfsOptions {
  /**
   * The records directory (default `/run/vfio-ts` under `root`). Tests point it elsewhere; the same ownership and
   * mode checks apply wherever it is.
   */
  recordsDir?: string;
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

function untrustedProblem(st: Stats, kind: "directory" | "file"): string | null {
  if (st.isSymbolicLink()) return "it is a symbolic link";
  if (kind === "directory" ? !st.isDirectory() : !st.isFile()) return `it is not a ${kind}`;
  if (st.uid !== 0) return `it is owned by uid ${st.uid}, not root`;
  if ((st.mode & 0o022) !== 0) return `it is writable by group or others (mode 0${(st.mode & 0o7777).toString(8)})`;
  return null;
}

function trust(path: string, st: Stats, kind: "directory" | "file"): void {
  const problem = untrustedProblem(st, kind);
  if (problem !== null) throw new UntrustedRecordError(path, problem);
}

/**
 * The records directory after checking it and its parent (root-owned, not writable by group or others, not a
 * link); `null` when it does not exist and `create` is false. With `create` it is made with mode 0700.
 *
 * @throws {UntrustedRecordError} the directory or its parent is not one only root can write.
 * @throws {RecordsDirError} it cannot be created (read-only `/run`, not root).
 *
 * ```ts
 * import { recordsDirectory } from "@vfio-ts/vfio/sysfs";
 * console.log(recordsDirectory({}, false)); // "/run/vfio-ts" or null
 * ```
 */
export function recordsDirectory(options: RecordOptions = {}, create = false): string | null {
  const dir = options.recordsDir ?? hostPath(options, RECORDS_DIR);
  const parent = dirname(dir);
  let st: Stats;
  try {
    trust(parent, statSync(parent), "directory");
    st = lstatSync(dir);
  } catch (e) {
    if (e instanceof VfioError) throw e;
    if (fsErrorCode(e) !== "ENOENT") throw new RecordsDirError(dir, (e as Error).message, { cause: e });
    if (!create) return null;
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (e2) {
      const code = fsErrorCode(e2) ?? "error";
      if (code !== "EEXIST") {
        const why = code === "ENOENT"
          ? `${parent} does not exist`
          : code === "EROFS"
          ? `${parent} is read-only`
          : code === "EACCES" || code === "EPERM"
          ? `${parent} is not writable by this user`
          : `mkdir failed`;
        throw new RecordsDirError(dir, `${why} [${code}]; vfio-ts keeps no records anywhere else`, { cause: e2 });
      }
    }
    st = lstatSync(dir);
  }
  trust(dir, st, "directory");
  return dir;
}

/** The path of a device's record (the directory is not checked). */
export function recordPath(dir: string, address: string): string {
  return join(dir, `${address}.json`);
}

function parseRecord(path: string, text: string, address: string): DriverRecord {
  let r: unknown;
  try {
    r = JSON.parse(text);
  } catch (e) {
    throw new UntrustedRecordError(path, "it is not JSON", { cause: e });
  }
  const o = (typeof r === "object" && r !== null ? r : {}) as Record<string, unknown>;
  if (o.address !== address) throw new UntrustedRecordError(path, `it is not a record of ${address}`);
  const field = (name: "driver" | "driverOverride"): string | null => {
    const v = o[name] ?? null;
    if (v === null) return null;
    if (typeof v !== "string") throw new UntrustedRecordError(path, `its ${name} is not a string`);
    checkDriverName(v, `the ${name} in ${path}`);
    return v;
  };
  return { address, driver: field("driver"), driverOverride: field("driverOverride") };
}

/**
 * The record of `address` left by an earlier {@linkcode bindToVfio}, or `null` when there is none.
 *
 * @throws {UntrustedRecordError} the record or its directory is not one only root can have written, or it holds
 * something other than plain driver names ({@linkcode InvalidDriverError}).
 *
 * ```ts
 * import { recordedDriver } from "@vfio-ts/vfio/sysfs";
 * const r = recordedDriver("0000:00:03.0");
 * if (r) console.log(`was on ${r.driver ?? "no driver"}`);
 * ```
 */
export function recordedDriver(address: string | PciAddress, options: RecordOptions = {}): DriverRecord | null {
  const canonical = parsePciAddress(address).toString();
  const dir = recordsDirectory(options, false);
  if (dir === null) return null;
  const path = recordPath(dir, canonical);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = fsErrorCode(e);
    if (code === "ENOENT") return null;
    if (code === "ELOOP") throw new UntrustedRecordError(path, "it is a symbolic link", { cause: e });
    throw new VfioError(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const st = fstatSync(fd);
    trust(path, st, "file");
    if (st.size > MAX_RECORD_BYTES) throw new UntrustedRecordError(path, `it is ${st.size} bytes long`);
    return parseRecord(path, readFileSync(fd, "utf8"), canonical);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a device's record: into a file created exclusively (never following a link) in the checked records
 * directory, flushed, then renamed over `<address>.json`.
 *
 * ```ts
 * import { writeDriverRecord } from "./driver_record.ts";
 * writeDriverRecord({ address: "0000:00:03.0", driver: "e1000e", driverOverride: null });
 * ```
 */
export function writeDriverRecord(record: DriverRecord, options: RecordOptions = {}): void {
  if (record.driver !== null) checkDriverName(record.driver, `the driver of ${record.address}`);
  if (record.driverOverride !== null) {
    checkDriverName(record.driverOverride, `the driver_override of ${record.address}`);
  }
  const dir = recordsDirectory(options, true) as string;
  const path = recordPath(dir, record.address);
  const temp = join(dir, `.${record.address}.json.${process.pid}.tmp`);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  let fd: number;
  try {
    fd = openSync(temp, flags, 0o600);
  } catch (e) {
    throw new RecordsDirError(dir, `cannot create ${temp}: ${(e as Error).message}`, { cause: e });
  }
  try {
    try {
      writeAllSync(fd, JSON.stringify(record) + "\n");
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (e) {
    try {
      unlinkSync(temp);
    } catch {
      // renamed already, or gone
    }
    throw new RecordsDirError(dir, `cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Removes a device's record (nothing when there is none).
 *
 * ```ts
 * import { forgetDriverRecord } from "./driver_record.ts";
 * forgetDriverRecord("0000:00:03.0");
 * ```
 */
export function forgetDriverRecord(address: string, options: RecordOptions = {}): void {
  const dir = recordsDirectory(options, false);
  if (dir === null) return;
  try {
    unlinkSync(recordPath(dir, parsePciAddress(address).toString()));
  } catch (e) {
    if (fsErrorCode(e) !== "ENOENT") throw new RecordsDirError(dir, (e as Error).message, { cause: e });
  }
}
