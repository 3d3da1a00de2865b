/**
 * The capability numbers vfio-ts checks for, from the Linux 6.12 uapi header `linux/capability.h`. A capability
 * `CAP_X` is held when bit `CAP_X` of the `CapEff` mask in `/proc/self/status` is set.
 *
 * ```ts
 * import { CAP_SYS_RAWIO } from "@vfio-ts/vfio/abi";
 * const capEff = 0x000001ffffffffffn; // from /proc/self/status
 * const rawio = (capEff >> BigInt(CAP_SYS_RAWIO) & 1n) === 1n; // true
 * ```
 * @module
 */

/** Bypass file read, write and execute permission checks. */
export const CAP_DAC_OVERRIDE = 1;
/** Bypass file read permission checks and directory read/search checks. */
export const CAP_DAC_READ_SEARCH = 2;
/** Lock memory (mlock, mlockall, MAP_LOCKED, SHM_LOCK) beyond RLIMIT_MEMLOCK. */
export const CAP_IPC_LOCK = 14;
/** Load and unload kernel modules. */
export const CAP_SYS_MODULE = 16;
/** Raw I/O: needed to open no-IOMMU VFIO groups and containers. */
export const CAP_SYS_RAWIO = 17;
/** The catch-all administration capability: needed to read physical frame numbers from /proc/self/pagemap. */
export const CAP_SYS_ADMIN = 21;
/** Override resource limits, RLIMIT_MEMLOCK among them. */
export const CAP_SYS_RESOURCE = 24;
