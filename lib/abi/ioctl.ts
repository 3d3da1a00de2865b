/**
 * The Linux ioctl request-number encoding (`linux/ioctl.h`, the generic layout used on x86_64 and aarch64).
 *
 * A request number packs a direction, a size, a type byte and a command number:
 * `dir << 30 | size << 16 | type << 8 | nr`. The results are unsigned 32-bit numbers, ready to pass as the
 * `unsigned long request` argument of `ioctl`.
 *
 * ```ts
 * import { _IO, _IOWR } from "@vfio-ts/vfio/abi";
 * _IO(";", 100);       // VFIO_GET_API_VERSION: 15204
 * _IOWR("x", 1, 16);   // read/write command 1 of type 'x' carrying a 16-byte struct
 * ```
 * @module
 */

/** Bits of the command number field. */
export const _IOC_NRBITS = 8;
/** Bits of the type field. */
export const _IOC_TYPEBITS = 8;
/** Bits of the size field. */
export const _IOC_SIZEBITS = 14;
/** Bits of the direction field. */
export const _IOC_DIRBITS = 2;
/** Shift of the command number field. */
export const _IOC_NRSHIFT = 0;
/** Shift of the type field. */
export const _IOC_TYPESHIFT: number = _IOC_NRSHIFT + _IOC_NRBITS;
/** Shift of the size field. */
export const _IOC_SIZESHIFT: number = _IOC_TYPESHIFT + _IOC_TYPEBITS;
/** Shift of the direction field. */
export const _IOC_DIRSHIFT: number = _IOC_SIZESHIFT + _IOC_SIZEBITS;
/** Direction: no data transfer. */
export const _IOC_NONE = 0;
/** Direction: user space writes data to the kernel. */
export const _IOC_WRITE = 1;
/** Direction: user space reads data from the kernel. */
export const _IOC_READ = 2;

/** An ioctl type: its byte value, or a one-character string such as `";"`. */
export type IoctlType = number | string;

function field(what: string, value: number, bits: number): number {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) {
    throw new RangeError(`ioctl ${what} ${value} does not fit in ${bits} bits`);
  }
  return value;
}

function typeByte(type: IoctlType): number {
  if (typeof type === "string") {
    if (type.length !== 1) throw new RangeError(`ioctl type must be one character, got ${JSON.stringify(type)}`);
    return field("type", type.charCodeAt(0), _IOC_TYPEBITS);
  }
  return field("type", type, _IOC_TYPEBITS);
}

/**
 * Encodes an ioctl request number from its four parts (the kernel's `_IOC`). Throws `RangeError` if a part
 * does not fit its field.
 *
 * ```ts
 * import { _IOC, _IOC_READ } from "@vfio-ts/vfio/abi";
 * _IOC(_IOC_READ, "x", 2, 8); // 0x80087802
 * ```
 */
export function _IOC(dir: number, type: IoctlType, nr: number, size: number): number {
  return ((field("direction", dir, _IOC_DIRBITS) << _IOC_DIRSHIFT) |
    (field("size", size, _IOC_SIZEBITS) << _IOC_SIZESHIFT) |
    (typeByte(type) << _IOC_TYPESHIFT) |
    (field("number", nr, _IOC_NRBITS) << _IOC_NRSHIFT)) >>> 0;
}

/**
 * A request that carries no data (VFIO and iommufd use only these; the struct size travels in `argsz`).
 *
 * ```ts
 * import { _IO } from "@vfio-ts/vfio/abi";
 * _IO(";", 100 + 3); // VFIO_GROUP_GET_STATUS
 * ```
 */
export function _IO(type: IoctlType, nr: number): number {
  return _IOC(_IOC_NONE, type, nr, 0);
}

/**
 * A request through which the kernel returns `size` bytes to user space.
 *
 * ```ts
 * import { _IOR } from "@vfio-ts/vfio/abi";
 * _IOR("x", 2, 8);
 * ```
 */
export function _IOR(type: IoctlType, nr: number, size: number): number {
  return _IOC(_IOC_READ, type, nr, size);
}

/**
 * A request through which user space passes `size` bytes to the kernel.
 *
 * ```ts
 * import { _IOW } from "@vfio-ts/vfio/abi";
 * _IOW("x", 3, 4);
 * ```
 */
export function _IOW(type: IoctlType, nr: number, size: number): number {
  return _IOC(_IOC_WRITE, type, nr, size);
}

/**
 * A request that passes `size` bytes in and gets them back updated.
 *
 * ```ts
 * import { _IOWR } from "@vfio-ts/vfio/abi";
 * _IOWR("x", 4, 32);
 * ```
 */
export function _IOWR(type: IoctlType, nr: number, size: number): number {
  return _IOC(_IOC_READ | _IOC_WRITE, type, nr, size);
}
