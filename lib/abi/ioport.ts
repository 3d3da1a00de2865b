/**
 * Resource flag bits from the Linux 6.12 kernel header `linux/ioport.h` (not a uapi header, but its values are
 * what the third column of `/sys/bus/pci/devices/<address>/resource` prints, one line per resource).
 *
 * ```ts
 * import { IORESOURCE_MEM, IORESOURCE_MEM_64, IORESOURCE_PREFETCH } from "@vfio-ts/vfio/abi";
 * const flags = 0x140204; // a BAR line "0x...4000000000 0x...400007ffff 0x0000000000140204"
 * const is64BitMemory = (flags & IORESOURCE_MEM) !== 0 && (flags & IORESOURCE_MEM_64) !== 0; // true
 * const prefetchable = (flags & IORESOURCE_PREFETCH) !== 0; // false
 * ```
 * @module
 */

/** Mask of the resource type bits. */
export const IORESOURCE_TYPE_BITS = 0x00001f00;
/** Type: I/O port space. */
export const IORESOURCE_IO = 0x00000100;
/** Type: memory space. */
export const IORESOURCE_MEM = 0x00000200;
/** Memory without read side effects (a prefetchable BAR). */
export const IORESOURCE_PREFETCH = 0x00002000;
/** Read-only resource (expansion ROMs). */
export const IORESOURCE_READONLY = 0x00004000;
/** The size gives the alignment. */
export const IORESOURCE_SIZEALIGN = 0x00040000;
/** A 64-bit memory BAR. */
export const IORESOURCE_MEM_64 = 0x00100000;
/** The resource is forwarded by a bridge (a bridge window). */
export const IORESOURCE_WINDOW = 0x00200000;
/** The resource is disabled. */
export const IORESOURCE_DISABLED = 0x10000000;
/** No address has been assigned yet. */
export const IORESOURCE_UNSET = 0x20000000;
