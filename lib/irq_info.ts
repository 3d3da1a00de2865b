/**
 * What a device offers per vfio-pci IRQ index (`VFIO_DEVICE_GET_IRQ_INFO`): how many vectors, and whether they
 * signal eventfds, can be masked, are masked by the kernel on every interrupt (INTx), or cannot be resized.
 *
 * ```ts
 * import { irqInfo, IrqIndex } from "@vfio-ts/vfio";
 * declare const dev: import("./types.ts").DeviceFd;
 * const msix = irqInfo(dev, IrqIndex.MSIX);
 * console.log(`${msix.name}: ${msix.count} vectors`);
 * ```
 * @module
 */

import { libc } from "../ffi/libc.ts";
import {
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_MASKABLE,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_REQ_IRQ_INDEX,
  VfioIrqInfo,
} from "./abi/vfio.ts";
import { MalformedReplyError, OutOfRangeError, SystemError } from "./errors.ts";
import type { DeviceFd } from "./types.ts";

/**
 * The vfio-pci IRQ indexes by name.
 *
 * ```ts
 * import { IrqIndex } from "@vfio-ts/vfio";
 * const index = IrqIndex.MSI; // 1
 * ```
 */
export const IrqIndex = {
  /** Legacy level-triggered pin interrupt (one vector, automasked). */
  INTX: VFIO_PCI_INTX_IRQ_INDEX,
  /** Message-signalled interrupts (up to 32 vectors). */
  MSI: VFIO_PCI_MSI_IRQ_INDEX,
  /** MSI-X (up to 2048 vectors). */
  MSIX: VFIO_PCI_MSIX_IRQ_INDEX,
  /** Signalled on an AER error (PCIe devices only). */
  ERR: VFIO_PCI_ERR_IRQ_INDEX,
  /** Signalled when the kernel wants the device back (e.g. an unbind is pending). */
  REQ: VFIO_PCI_REQ_IRQ_INDEX,
} as const;

/** One of the vfio-pci IRQ indexes, 0 to 4. */
export type IrqIndex = typeof IrqIndex[keyof typeof IrqIndex];

/** The readable name of an IRQ index. */
export type IrqIndexName = "INTx" | "MSI" | "MSI-X" | "ERR" | "REQ";

const NAMES: readonly IrqIndexName[] = ["INTx", "MSI", "MSI-X", "ERR", "REQ"];

/**
 * The readable name of an IRQ index (`2` → `"MSI-X"`).
 *
 * ```ts
 * import { irqIndexName } from "@vfio-ts/vfio";
 * console.log(irqIndexName(0)); // "INTx"
 * ```
 */
export function irqIndexName(index: number): IrqIndexName {
  return NAMES[checkIndex(index)];
}

/** What {@linkcode irqInfo} reports for one index. */
export interface IrqInfo {
  /** The IRQ index. */
  readonly index: IrqIndex;
  /** Its name: INTx, MSI, MSI-X, ERR or REQ. */
  readonly name: IrqIndexName;
  /** Number of vectors the device offers at this index (0: none). */
  readonly count: number;
  /** The raw `VFIO_IRQ_INFO_*` flags. */
  readonly flags: number;
  /** The vectors can signal an eventfd. */
  readonly eventfd: boolean;
  /** The vectors can be masked and unmasked. */
  readonly maskable: boolean;
  /** The kernel masks the vector on every interrupt; it stays masked until unmasked (INTx). */
  readonly automasked: boolean;
  /** The vector count cannot change while enabled: disable the index before enabling more vectors. */
  readonly noresize: boolean;
}

function checkIndex(index: number): IrqIndex {
  if (!Number.isInteger(index) || index < 0 || index >= VFIO_PCI_NUM_IRQS) {
    throw new OutOfRangeError(`IRQ index ${index} does not exist`, {
      remedy: "use IrqIndex.INTX (0), MSI (1), MSIX (2), ERR (3) or REQ (4)",
    });
  }
  return index as IrqIndex;
}

/**
 * Asks the kernel what the device offers at one IRQ index (`VFIO_DEVICE_GET_IRQ_INFO`). An index the device
 * lacks reports `count: 0` (e.g. MSI-X on a device without the capability).
 *
 * ```ts
 * import { irqInfo, IrqIndex } from "@vfio-ts/vfio";
 * declare const dev: import("./types.ts").DeviceFd;
 * const intx = irqInfo(dev, IrqIndex.INTX);
 * if (intx.automasked) console.log("unmask INTx after each interrupt");
 * ```
 */
export function irqInfo(dev: DeviceFd, index: number): IrqInfo {
  const i = checkIndex(index);
  const info = VfioIrqInfo.alloc();
  info.argsz = VfioIrqInfo.size;
  info.index = i;
  try {
    libc.ioctl(dev.fd, VFIO_DEVICE_GET_IRQ_INFO, info.bytes, {
      target: "VFIO_DEVICE_GET_IRQ_INFO",
      kind: "vfio-device-ioctl",
    });
  } catch (e) {
    // vfio-pci answers EINVAL for ERR on a conventional (non-PCIe) device: the index is absent, count 0.
    if (e instanceof SystemError && e.code === "EINVAL") return describe(i, 0, 0);
    throw e;
  }
  return decodeIrqInfo(i, info.bytes);
}

/**
 * Decodes a `VFIO_DEVICE_GET_IRQ_INFO` answer (`struct vfio_irq_info`, 16 bytes) for IRQ index `index`. Any flag
 * and count values decode (unknown flag bits are kept in `flags`); a buffer shorter than the struct or an index
 * outside vfio-pci's throws a library error.
 *
 * ```ts
 * import { decodeIrqInfo } from "./irq_info.ts";
 * const bytes = new Uint8Array(16);
 * new DataView(bytes.buffer).setUint32(4, 0b111, true); // EVENTFD | MASKABLE | AUTOMASKED
 * new DataView(bytes.buffer).setUint32(12, 1, true); // one vector
 * console.log(decodeIrqInfo(0, bytes).automasked); // true: INTx
 * ```
 */
export function decodeIrqInfo(index: number, bytes: Uint8Array): IrqInfo {
  const i = checkIndex(index);
  if (bytes.byteLength < VfioIrqInfo.size) {
    throw new OutOfRangeError(`an IRQ info answer has ${bytes.byteLength} bytes, fewer than ${VfioIrqInfo.size}`);
  }
  const info = VfioIrqInfo.view(bytes);
  // MSI-X, the largest, has at most 2048 vectors: a bigger count would size eventfd arrays by a kernel bug.
  if (info.count > MAX_VECTORS) {
    throw new MalformedReplyError(
      "VFIO_DEVICE_GET_IRQ_INFO",
      `reports ${info.count} ${NAMES[i]} vectors (at most ${MAX_VECTORS})`,
    );
  }
  return describe(i, info.count, info.flags);
}

/** The most vectors any IRQ index can have (the MSI-X table size limit). */
const MAX_VECTORS = 2048;

/**
 * The info of every vfio-pci IRQ index, INTx to REQ.
 *
 * ```ts
 * import { irqInfoAll } from "@vfio-ts/vfio";
 * declare const dev: import("./types.ts").DeviceFd;
 * for (const i of irqInfoAll(dev)) console.log(i.name, i.count);
 * ```
 */
export function irqInfoAll(dev: DeviceFd): IrqInfo[] {
  return NAMES.map((_, i) => irqInfo(dev, i));
}

function describe(index: IrqIndex, count: number, flags: number): IrqInfo {
  return {
    index,
    name: NAMES[index],
    count,
    flags,
    eventfd: (flags & VFIO_IRQ_INFO_EVENTFD) !== 0,
    maskable: (flags & VFIO_IRQ_INFO_MASKABLE) !== 0,
    automasked: (flags & VFIO_IRQ_INFO_AUTOMASKED) !== 0,
    noresize: (flags & VFIO_IRQ_INFO_NORESIZE) !== 0,
  };
}
