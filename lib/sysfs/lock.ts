/**
 * A per-device lock that serialises driver changes (bind, unbind, restore) across processes: `flock(2)` on
 * `<address>.lock` in the records directory (see `driver_record.ts`). The holder writes its pid into the file, so
 * a process that gives up waiting can say who holds it. The kernel drops the lock when the holder exits, however it
 * exits.
 *
 * ```ts
 * import { lockDevice } from "@vfio-ts/vfio/sysfs";
 * using lock = lockDevice("0000:00:03.0", { lockTimeoutMs: 5000 });
 * // … change the device's driver …
 * ```
 * @module
 */

import { closeSync, constants, fstatSync, ftruncateSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { LOCK_EX, LOCK_NB, LOCK_UN } from "../../ffi/constants.ts";
import { libc } from "../../ffi/libc.ts";
import { DeviceLockedError, UntrustedRecordError, VfioError } from "../errors.ts";
import { parsePciAddress, type PciAddress } from "../pci_address.ts";
import { writeAllSync } from "../write_all.ts";
import { hostPath } from "./attr.ts";
import { type RecordOptions, recordsDirectory } from "./driver_record.ts";

/** Options of {@linkcode lockDevice}. */
export interface LockOptions extends RecordOptions {
  /** How long to wait for another process to finish with the device (default 10 000 ms). */
  lockTimeoutMs?: number;
}

const POLL_MS = 50;

/**
 * Blocks the calling thread for `ms` milliseconds (synchronous code has no other way to wait).
 *
 * ```ts
 * import { sleepSync } from "./lock.ts";
 * sleepSync(10);
 * ```
 */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.max(0, ms));
}

/** A held device lock; `close()` (or leaving a `using` scope) releases it. */
export class DeviceLock implements Disposable {
  #fd: number | null;
  /** The device's canonical address. */
  readonly address: string;
  /** The lock file. */
  readonly path: string;

  /** Wraps an fd that holds the lock; use {@linkcode lockDevice}. */
  constructor(fd: number, address: string, path: string) {
    this.#fd = fd;
    this.address = address;
    this.path = path;
  }

  /** Releases the lock; does nothing the second time. */
  close(): void {
    const fd = this.#fd;
    if (fd === null) return;
    this.#fd = null;
    try {
      libc.flock(fd, LOCK_UN, this.path);
    } finally {
      closeSync(fd); // closing alone releases it too
    }
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function holder(fd: number, options: RecordOptions): { pid: number | null; command: string } {
  let pid: number | null = null;
  try {
    const text = readFileSync(fd, "utf8").trim();
    if (/^\d{1,10}$/.test(text)) pid = Number(text);
  } catch {
    // unknown
  }
  let command = "";
  if (pid !== null) {
    try {
      command = readFileSync(hostPath(options, `/proc/${pid}/comm`), "utf8").trim();
    } catch {
      // exited meanwhile
    }
  }
  return { pid, command };
}

/**
 * Takes the device's lock, waiting up to `lockTimeoutMs` for another process to release it. Creates the records
 * directory if needed (with the same checks as the records).
 *
 * @throws {DeviceLockedError} another process held it for the whole wait (its pid named when known).
 * @throws {UntrustedRecordError} the lock file or its directory is not one only root can write.
 * @throws {RecordsDirError} the records directory cannot be created.
 *
 * ```ts
 * import { lockDevice } from "@vfio-ts/vfio/sysfs";
 * const lock = lockDevice("0000:00:03.0");
 * try {
 *   // … change the device's driver …
 * } finally {
 *   lock.close();
 * }
 * ```
 */
export function lockDevice(address: string | PciAddress, options: LockOptions = {}): DeviceLock {
  const canonical = parsePciAddress(address).toString();
  const dir = recordsDirectory(options, true) as string;
  const path = join(dir, `${canonical}.lock`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  } catch (e) {
    throw (e as { code?: string }).code === "ELOOP"
      ? new UntrustedRecordError(path, "it is a symbolic link", { cause: e })
      : new VfioError(`cannot open the lock file ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== 0 || (st.mode & 0o022) !== 0) {
      throw new UntrustedRecordError(path, "it is not a root-owned regular file writable only by root");
    }
    const timeoutMs = options.lockTimeoutMs ?? 10_000;
    const start = Date.now();
    while (!libc.flock(fd, LOCK_EX | LOCK_NB, path)) {
      const waited = Date.now() - start;
      if (waited >= timeoutMs) {
        const h = holder(fd, options);
        throw new DeviceLockedError(canonical, h.pid, h.command, waited);
      }
      sleepSync(Math.min(POLL_MS, timeoutMs - waited));
    }
    ftruncateSync(fd, 0);
    writeAllSync(fd, `${process.pid}\n`, 0);
    return new DeviceLock(fd, canonical, path);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}
