/**
 * Small shared shapes used across the library.
 *
 * ```ts
 * import type { DeviceFd } from "@vfio-ts/vfio";
 * function describe(dev: DeviceFd): string { return `${dev.name} on fd ${dev.fd}`; }
 * ```
 * @module
 */

/**
 * What a region, config space or IRQ set needs of its device: the open VFIO device fd and a name for messages.
 * Reading `fd` after the device is closed throws a `ClosedError`.
 */
export interface DeviceFd {
  /** The VFIO device file descriptor (throws `ClosedError` once the device is closed). */
  readonly fd: number;
  /** The device's name for messages, e.g. its PCI address `0000:00:03.0`. */
  readonly name: string;
}
