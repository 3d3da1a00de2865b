/**
 * A VFIO device: its info, reset, and everything it owns — region mappings, IRQ sets, DMA buffers — all released
 * by one `close()`. Get one with `openDevice()` (see `lib/open.ts`).
 *
 * ```ts
 * import { openDevice } from "@vfio-ts/vfio";
 * using dev = openDevice("0000:00:03.0");
 * console.log(dev.info());
 * ```
 * @module
 */
import { libc } from "../ffi/libc.ts";
import {
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  VFIO_DEVICE_RESET,
  VfioDeviceInfo,
  VfioPciDependentDevice,
  VfioPciHotResetInfo,
} from "./abi/vfio.ts";
import { ConfigSpace } from "./config.ts";
import { allocDma, type DmaBuffer, type DmaBufferOptions } from "./dma/buffer.ts";
import { allocDmaPool, type DmaPool, type DmaPoolOptions } from "./dma/pool.ts";
import { ClosedError, SystemError, UnsupportedError } from "./errors.ts";
import type { DmaMapper, IommuKind } from "./iommu/types.ts";
import { type IrqEnableOptions, type IrqInfo, irqInfo, IrqSet } from "./irq.ts";
import { checkSpan, replyBytes } from "./kernel_reply.ts";
import { Region, type RegionOptions } from "./region.ts";
import type { GroupType } from "./sysfs/iommu_group.ts";
import type { DeviceFd } from "./types.ts";
import { setVfToken } from "./vf_token.ts";

/** What `VFIO_DEVICE_GET_INFO` reports. */
export interface DeviceInfo {
  /** Raw `VFIO_DEVICE_FLAGS_*`. */
  flags: number;
  /** A PCI device (vfio-pci). */
  pci: boolean;
  /** The device supports `VFIO_DEVICE_RESET`. */
  resetSupported: boolean;
  /** Number of regions (9 for PCI: BAR0-5, ROM, config, VGA). */
  numRegions: number;
  /** Number of IRQ indexes (5 for PCI: INTx, MSI, MSI-X, ERR, REQ). */
  numIrqs: number;
}

/** One device a PCI hot reset would also reset. */
export interface HotResetDependent {
  /** PCI address. */
  address: string;
  /** Its IOMMU group (or iommufd device id on the cdev path). */
  groupId: number;
}

/**
 * Decodes a filled `vfio_pci_hot_reset_info`: the devices a hot reset also resets. Throws a `MalformedReplyError`
 * when the count the kernel gives does not fit the buffer.
 *
 * ```ts
 * import { VfioPciHotResetInfo } from "@vfio-ts/vfio/abi";
 * import { decodeHotResetInfo } from "./device.ts";
 * decodeHotResetInfo(VfioPciHotResetInfo.alloc().bytes); // []
 * ```
 */
export function decodeHotResetInfo(bytes: Uint8Array): HotResetDependent[] {
  const info = VfioPciHotResetInfo.view(bytes);
  const n = info.count;
  checkSpan(
    "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO",
    bytes,
    VfioPciHotResetInfo.size,
    n,
    VfioPciDependentDevice.size,
    "devices",
  );
  const out: HotResetDependent[] = [];
  for (let i = 0; i < n; i++) {
    const d = VfioPciDependentDevice.view(bytes, VfioPciHotResetInfo.size + i * VfioPciDependentDevice.size);
    const address = `${hex(d.segment, 4)}:${hex(d.bus, 2)}:${hex(d.devfn >> 3, 2)}.${d.devfn & 7}`;
    out.push({ address, groupId: d.group_id });
  }
  return out;
}

/** Anything a device owns and closes with itself. */
export interface Owned {
  /** Releases the resource (idempotent). */
  close(): void;
}

/** How a device was opened: its IOMMU path and the objects behind it, released in order on close. */
export interface DeviceParts {
  /** The VFIO device fd. */
  fd: number;
  /** The PCI address (or another name for messages). */
  name: string;
  /** Which IOMMU backend translates its DMA. */
  iommu: IommuKind;
  /** The DMA mapper for this device's DMA buffers. */
  mapper: DmaMapper;
  /** The kind of group the device is in (default: `noiommu` for the no-IOMMU path, else `iommu`). */
  groupType?: GroupType;
  /** Released after the device fd is closed, in this order (e.g. group, then container). */
  after?: Owned[];
}

/**
 * An open VFIO device. It implements {@linkcode DeviceFd}, so regions, config space and IRQ sets can be built
 * on it; the ones made through its methods are closed with it.
 *
 * ```ts
 * import { openDevice } from "@vfio-ts/vfio";
 * using dev = openDevice("0000:00:03.0");
 * if (dev.info().resetSupported) dev.reset();
 * ```
 */
export class Device implements DeviceFd {
  #fd: number;
  readonly #name: string;
  readonly #iommu: IommuKind;
  readonly #groupType: GroupType;
  readonly #mapper: DmaMapper;
  readonly #after: Owned[];
  readonly #owned = new Set<Owned>();
  readonly #regions = new Map<number, Region>();
  #config: ConfigSpace | null = null;

  /** Wraps an opened device fd; prefer `openDevice()`. */
  constructor(parts: DeviceParts) {
    this.#fd = parts.fd;
    this.#name = parts.name;
    this.#iommu = parts.iommu;
    this.#groupType = parts.groupType ?? (parts.iommu === "noiommu" ? "noiommu" : "iommu");
    this.#mapper = parts.mapper;
    this.#after = parts.after ?? [];
  }

  /** The device fd (throws `ClosedError` after close). */
  get fd(): number {
    if (this.#fd < 0) throw new ClosedError(`device ${this.#name}`);
    return this.#fd;
  }

  /** The device's PCI address. */
  get name(): string {
    return this.#name;
  }

  /** The IOMMU backend: `type1`, `iommufd` or `noiommu`. */
  get iommu(): IommuKind {
    return this.#iommu;
  }

  /**
   * What isolates the device's DMA: `iommu` (a real IOMMU), `emulated-iommu` (a mediated device: its kernel
   * driver mediates every access) or `noiommu` (nothing: the device can DMA anywhere).
   */
  get groupType(): GroupType {
    return this.#groupType;
  }

  /** The DMA mapper that makes bus addresses for this device (shared by devices in the same container/IOAS). */
  get dmaMapper(): DmaMapper {
    this.fd;
    return this.#mapper;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Reads `VFIO_DEVICE_GET_INFO`. */
  info(): DeviceInfo {
    const info = VfioDeviceInfo.alloc();
    info.argsz = VfioDeviceInfo.size;
    libc.ioctl(this.fd, VFIO_DEVICE_GET_INFO, info.bytes, "VFIO_DEVICE_GET_INFO");
    return {
      flags: info.flags,
      pci: (info.flags & VFIO_DEVICE_FLAGS_PCI) !== 0,
      resetSupported: (info.flags & VFIO_DEVICE_FLAGS_RESET) !== 0,
      numRegions: info.num_regions,
      numIrqs: info.num_irqs,
    };
  }

  /** Resets the device (`VFIO_DEVICE_RESET`); an `UnsupportedError` when it has no reset method. */
  reset(): void {
    const unsupported = (cause?: unknown): UnsupportedError =>
      new UnsupportedError(`${this.#name} has no reset method (no FLR, PM or bus reset available to VFIO)`, {
        remedy: "check device.info().resetSupported first; a hot reset of the slot may still work",
        cause,
      });
    if (!this.info().resetSupported) throw unsupported();
    try {
      libc.ioctl(this.fd, VFIO_DEVICE_RESET, null, "VFIO_DEVICE_RESET");
    } catch (e) {
      if (e instanceof SystemError && (e.code === "EINVAL" || e.code === "ENOTTY")) throw unsupported(e);
      throw e;
    }
  }

  /**
   * Sets the SR-IOV VF token (a UUID) of this PF, opened through vfio-pci with SR-IOV enabled: the users of its VFs
   * must then open them with the same token (`openDevice(vf, { vfToken })`). An `UnsupportedError` when the device
   * is not such a PF.
   *
   * ```ts ignore
   * pf.setVfToken(crypto.randomUUID());
   * ```
   */
  setVfToken(uuid: string): void {
    setVfToken(this.fd, this.#name, uuid);
  }

  /**
   * The devices a PCI hot (secondary bus) reset would also reset, or `null` when the kernel offers no hot reset
   * for this device.
   */
  hotResetInfo(): HotResetDependent[] | null {
    const call = "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO";
    let extra = 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      const info = VfioPciHotResetInfo.alloc(extra);
      info.argsz = VfioPciHotResetInfo.size + extra;
      try {
        libc.ioctl(this.fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info.bytes, call);
      } catch (e) {
        if (e instanceof SystemError && e.code === "ENOSPC" && extra === 0) {
          const wanted = VfioPciHotResetInfo.size + info.count * VfioPciDependentDevice.size;
          extra = replyBytes(call, wanted, VfioPciHotResetInfo.size) - VfioPciHotResetInfo.size;
          continue;
        }
        if (e instanceof SystemError && (e.code === "ENODEV" || e.code === "EINVAL" || e.code === "ENOTTY")) {
          return null;
        }
        throw e;
      }
      return decodeHotResetInfo(info.bytes);
    }
    return null;
  }

  /**
   * Opens region `index` (BAR0-5 are 0-5, ROM 6, config 7), mmapped when the kernel allows, pread/pwrite
   * otherwise. A region opened this way is cached and closed with the device.
   *
   * ```ts ignore
   * const regs = dev.region(0);
   * console.log(regs.read32(0).toString(16));
   * ```
   */
  region(index: number, options?: RegionOptions): Region {
    const cached = this.#regions.get(index);
    if (cached && !cached.closed) return cached;
    const region = this.own(Region.open(this, index, options));
    this.#regions.set(index, region);
    return region;
  }

  /** BAR `i` (0-5) as a {@linkcode Region}: same as `region(i)`. */
  bar(i: number): Region {
    if (!Number.isInteger(i) || i < 0 || i > 5) {
      throw new UnsupportedError(`BAR${i} does not exist`, { remedy: "PCI devices have BAR0 to BAR5" });
    }
    return this.region(i);
  }

  /** The device's PCI config space (opened on first use, closed with the device). */
  get config(): ConfigSpace {
    if (!this.#config || this.#config.region.closed) this.#config = this.own(ConfigSpace.open(this));
    return this.#config;
  }

  /** What the device offers at IRQ index `index` (0 INTx, 1 MSI, 2 MSI-X, 3 ERR, 4 REQ). */
  irqInfo(index: number): IrqInfo {
    return irqInfo(this, index);
  }

  /**
   * Routes `count` vectors of IRQ index `index` to eventfds; the set is closed (IRQs disabled) with the device.
   *
   * ```ts ignore
   * using irqs = dev.enableIrqs(IrqIndex.MSI, { count: 1 });
   * await irqs.wait(0, { timeoutMs: 1000 });
   * ```
   */
  enableIrqs(index: number, options?: IrqEnableOptions): IrqSet {
    return this.own(IrqSet.enable(this, index, options));
  }

  /** Allocates a DMA buffer mapped for this device (IOVA or physical address by IOMMU path), freed with it. */
  allocDma(sizeBytes: number, options?: DmaBufferOptions): DmaBuffer {
    return this.own(allocDma(this.dmaMapper, sizeBytes, options));
  }

  /** Allocates a pool of fixed-size DMA entries (packet buffers) for this device, freed with it. */
  allocDmaPool(options: DmaPoolOptions): DmaPool {
    return this.own(allocDmaPool(this.dmaMapper, options));
  }

  /** Registers a resource to be closed with this device (regions, IRQ sets, DMA buffers made on it). */
  own<T extends Owned>(resource: T): T {
    this.fd;
    this.#owned.add(resource);
    return resource;
  }

  /** Forgets a resource closed on its own. */
  disown(resource: Owned): void {
    this.#owned.delete(resource);
  }

  /**
   * Closes everything the device owns (IRQ sets first, so no interrupt fires into a closed eventfd; then regions
   * and DMA buffers), the device fd, then what it was opened through. Idempotent; safe after errors.
   */
  close(): void {
    if (this.#fd < 0) return;
    const errors: unknown[] = [];
    const owned = [...this.#owned].reverse();
    this.#owned.clear();
    for (const r of owned) {
      try {
        r.close();
      } catch (e) {
        errors.push(e);
      }
    }
    const fd = this.#fd;
    this.#fd = -1;
    try {
      libc.close(fd, `device ${this.#name}`);
    } catch (e) {
      errors.push(e);
    }
    for (const r of this.#after) {
      try {
        r.close();
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length) throw errors[0];
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, "0");
}
