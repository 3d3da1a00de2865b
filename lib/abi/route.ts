/**
 * Routing flags from the uapi header `linux/route.h`: the `Flags` column of `/proc/net/route` and the last
 * column of `/proc/net/ipv6_route` (hex).
 *
 * ```ts
 * import { RTF_REJECT, RTF_UP } from "@vfio-ts/vfio/abi";
 * const flags = 0x0003; // /proc/net/route's default route: up, through a gateway
 * const usable = (flags & RTF_UP) !== 0 && (flags & RTF_REJECT) === 0; // true
 * ```
 * @module
 */

/** The route is usable. */
export const RTF_UP = 0x0001;
/** The destination is reached through a gateway. */
export const RTF_GATEWAY = 0x0002;
/** The route rejects packets (an "unreachable" route, e.g. IPv6's default route on `lo`). */
export const RTF_REJECT = 0x0200;
