/**
 * What this process may do: its capabilities (`/proc/self/status`) and its locked-memory limit
 * (`/proc/self/limits`), checked up front so that a missing privilege is reported by name instead of as a bare
 * EPERM deep inside an ioctl.
 *
 * ```ts
 * import { checkNoiommuPrivileges, hasCapability } from "@vfio-ts/vfio/sysfs";
 * console.log(hasCapability("CAP_SYS_RAWIO"));
 * checkNoiommuPrivileges({ lockedBytes: 64 * 1024 * 1024 }); // throws a VfioError naming what is missing
 * ```
 * @module
 */

import { readFileSync } from "node:fs";
import {
  CAP_DAC_OVERRIDE,
  CAP_DAC_READ_SEARCH,
  CAP_IPC_LOCK,
  CAP_SYS_ADMIN,
  CAP_SYS_MODULE,
  CAP_SYS_RAWIO,
  CAP_SYS_RESOURCE,
} from "../abi/capability.ts";
import { VfioError } from "../errors.ts";
import { hostPath, type SysfsOptions } from "./attr.ts";

/** The capabilities vfio-ts knows by name, with their numbers. */
export const CAPABILITIES = {
  CAP_DAC_OVERRIDE,
  CAP_DAC_READ_SEARCH,
  CAP_IPC_LOCK,
  CAP_SYS_MODULE,
  CAP_SYS_RAWIO,
  CAP_SYS_ADMIN,
  CAP_SYS_RESOURCE,
} as const;

/** A capability name vfio-ts knows, e.g. `"CAP_SYS_RAWIO"`. */
export type CapabilityName = keyof typeof CAPABILITIES;

/** The process's identity, capability sets and locked-memory limit. */
export interface ProcessPrivileges {
  /** Effective user id. */
  readonly euid: number;
  /** Effective capability set (bit n = capability n). */
  readonly effective: bigint;
  /** Permitted capability set. */
  readonly permitted: bigint;
  /** Soft RLIMIT_MEMLOCK in bytes (`Infinity` when unlimited, `null` when unknown). */
  readonly memlockSoft: number | null;
  /** Hard RLIMIT_MEMLOCK in bytes (`Infinity` when unlimited, `null` when unknown). */
  readonly memlockHard: number | null;
}

function statusField(status: string, name: string): string | null {
  const m = new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status);
  return m ? m[1].trim() : null;
}

function limitValue(text: string): number | null {
  if (text === "unlimited") return Infinity;
  return /^\d+$/.test(text) ? Number(text) : null;
}

/**
 * Reads this process's privileges from `/proc/self/status` and `/proc/self/limits`.
 *
 * ```ts
 * import { processPrivileges } from "@vfio-ts/vfio/sysfs";
 * const p = processPrivileges();
 * console.log(p.euid, p.effective.toString(16), p.memlockSoft);
 * ```
 */
export function processPrivileges(options: SysfsOptions = {}): ProcessPrivileges {
  const status = readFileSync(hostPath(options, "/proc/self/status"), "utf8");
  const hex = (name: string): bigint => {
    const v = statusField(status, name);
    return v && /^[0-9a-fA-F]+$/.test(v) ? BigInt(`0x${v}`) : 0n;
  };
  const uid = statusField(status, "Uid")?.split(/\s+/) ?? [];
  let memlockSoft: number | null = null;
  let memlockHard: number | null = null;
  try {
    const limits = readFileSync(hostPath(options, "/proc/self/limits"), "utf8");
    const m = /^Max locked memory\s+(\S+)\s+(\S+)/m.exec(limits);
    if (m) {
      memlockSoft = limitValue(m[1]);
      memlockHard = limitValue(m[2]);
    }
  } catch {
    // no limits file: unknown
  }
  return {
    euid: uid.length > 1 ? Number(uid[1]) : -1,
    effective: hex("CapEff"),
    permitted: hex("CapPrm"),
    memlockSoft,
    memlockHard,
  };
}

/**
 * Whether the process holds a capability in its effective set, by name or number.
 *
 * ```ts
 * import { hasCapability } from "@vfio-ts/vfio/sysfs";
 * if (!hasCapability("CAP_SYS_ADMIN")) console.log("pagemap will show physical frame 0");
 * ```
 */
export function hasCapability(capability: CapabilityName | number, options: SysfsOptions = {}): boolean {
  const n = typeof capability === "number" ? capability : CAPABILITIES[capability];
  if (n === undefined || !Number.isInteger(n) || n < 0 || n > 63) {
    throw new VfioError(`unknown capability ${String(capability)}`, {
      remedy: `use one of ${Object.keys(CAPABILITIES).join(", ")} or a number 0-63`,
    });
  }
  return ((processPrivileges(options).effective >> BigInt(n)) & 1n) === 1n;
}

/** Options of {@linkcode checkNoiommuPrivileges}. */
export interface NoiommuPrivilegeOptions extends SysfsOptions {
  /** Whether DMA addresses will be read from `/proc/self/pagemap` (needs CAP_SYS_ADMIN; default `true`). */
  physicalAddresses?: boolean;
  /** How many bytes of DMA memory will be locked; checked against RLIMIT_MEMLOCK unless CAP_IPC_LOCK is held. */
  lockedBytes?: number;
}

/**
 * Checks that this process can use a no-IOMMU group: CAP_SYS_RAWIO to open it, CAP_SYS_ADMIN to read physical
 * addresses from pagemap, and CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK to lock DMA memory.
 *
 * @throws {VfioError} naming every missing capability and what it is for.
 *
 * ```ts
 * import { checkNoiommuPrivileges } from "@vfio-ts/vfio/sysfs";
 * checkNoiommuPrivileges({ lockedBytes: 16 * 1024 * 1024 });
 * ```
 */
export function checkNoiommuPrivileges(options: NoiommuPrivilegeOptions = {}): void {
  const p = processPrivileges(options);
  const has = (n: number): boolean => ((p.effective >> BigInt(n)) & 1n) === 1n;
  const missing: string[] = [];
  if (!has(CAP_SYS_RAWIO)) missing.push("CAP_SYS_RAWIO (to open a no-IOMMU group, /dev/vfio/noiommu-N)");
  if (options.physicalAddresses !== false && !has(CAP_SYS_ADMIN)) {
    missing.push("CAP_SYS_ADMIN (to read physical addresses from /proc/self/pagemap; without it they read as 0)");
  }
  const want = options.lockedBytes ?? 0;
  if (want > 0 && !has(CAP_IPC_LOCK) && p.memlockSoft !== null && p.memlockSoft < want) {
    missing.push(
      `CAP_IPC_LOCK or an RLIMIT_MEMLOCK of at least ${want} bytes (to lock DMA memory; the limit is ${p.memlockSoft})`,
    );
  }
  if (missing.length === 0) return;
  throw new VfioError(`this process lacks what no-IOMMU mode needs: ${missing.join("; ")}`, {
    remedy: "run as root, or grant the capabilities: setcap cap_sys_rawio,cap_sys_admin,cap_ipc_lock+ep <runtime>",
  });
}
