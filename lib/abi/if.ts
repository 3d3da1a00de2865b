/**
 * Network interface flags from the uapi header `linux/if.h`: the bits of `/sys/class/net/<interface>/flags`.
 *
 * ```ts
 * import { IFF_UP } from "@vfio-ts/vfio/abi";
 * const flags = 0x1003; // /sys/class/net/eth0/flags of an interface that is up
 * const up = (flags & IFF_UP) !== 0; // true
 * ```
 * @module
 */

/** The interface is administratively up (`ip link set <if> up`). */
export const IFF_UP = 0x1;
/** The driver reports the interface as running (resources allocated). */
export const IFF_RUNNING = 0x40;
