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
import { ClosedError, SystemError, UnsupportedError, VfioError } from "./errors.ts";
import { hotReset } from "./hot_reset.ts";
import { inspectable } from "./inspect.ts";
import { attachIoas, bindIommufd } from "./iommu/iommufd.ts";
import type { DmaMapper, IommuKind } from "./iommu/types.ts";
import { IovaSpace } from "./iova_space.ts";
import { type IrqEnableOptions, type IrqIndex, type IrqInfo, irqInfo, IrqSet, type IrqSetSummary } from "./irq.ts";
import { checkSpan, replyBytes } from "./kernel_reply.ts";
import { pciAddress } from "./pci_address.ts";
import { Region, type RegionOptions, type RegionSummary } from "./region.ts";
import type { GroupType } from "./sysfs/iommu_group.ts";
import { mmioTraced, tracedRegion } from "./trace.ts";
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
    const address = pciAddress(d.segment, d.bus, d.devfn >> 3, d.devfn & 7).toString();
    out.push({ address, groupId: d.group_id });
  }
  return out;
}

/** Options of {@linkcode Device.fromFd}. */
export interface DeviceFromFdOptions {
  /** The name for messages and inspection (e.g. the PCI address; default `device fd N`). */
  name?: string;
  /** An open iommufd to bind to (adopted; default: `/dev/iommu` opened here). Ignored with `space`. */
  iommufd?: number;
  /** A caller-owned iommufd IOVA space to attach to (default: a fresh one, closed with the device). */
  space?: IovaSpace;
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

  /**
   * Adopts a VFIO device cdev fd opened by someone else (`/dev/vfio/devices/vfioN`, e.g. received from a privileged
   * helper over a UNIX socket, libvirt style): binds it to an iommufd and attaches it to an IOAS, so a process that
   * may not open the nodes itself can drive the device. The iommufd is `options.iommufd` (an fd received the same
   * way), else `/dev/iommu` opened here; the IOAS is `options.space`'s, else a fresh one closed with the device.
   * The iommufd given is adopted either way (closed with the device, or on failure); `fd` is the device's on
   * success and stays the caller's on failure.
   *
   * ```ts ignore
   * using dev = Device.fromFd(deviceFd, { name: "0000:00:03.0", iommufd: iommufdFd });
   * ```
   */
  static fromFd(fd: number, options: DeviceFromFdOptions = {}): Device {
    const name = options.name ?? `device fd ${fd}`;
    if (!Number.isInteger(fd) || fd < 0) throw new VfioError(`${fd} is not a file descriptor`);
    const own = options.space ? null : IovaSpace.create({ kind: "iommufd", fd: options.iommufd });
    const space = options.space ?? own!;
    let lease: Owned | null = null;
    try {
      lease = space.lease("iommufd");
      bindIommufd(fd, space.iommufd!, name);
      attachIoas(fd, space.ioas!, name);
    } catch (e) {
      lease?.close();
      own?.close();
      throw e;
    }
    return new Device({ fd, name, iommu: "iommufd", mapper: space.mapper, after: own ? [lease, own] : [lease] });
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
    libc.ioctl(this.fd, VFIO_DEVICE_GET_INFO, info.bytes, {
      target: "VFIO_DEVICE_GET_INFO",
      kind: "vfio-device-ioctl",
    });
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
      libc.ioctl(this.fd, VFIO_DEVICE_RESET, null, { target: "VFIO_DEVICE_RESET", kind: "vfio-device-ioctl" });
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
        libc.ioctl(this.fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info.bytes, {
          target: call,
          kind: "vfio-device-ioctl",
        });
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
   * PCI hot reset (`VFIO_DEVICE_PCI_HOT_RESET`): resets this device and every device {@linkcode hotResetInfo}
   * names, passing the fds of their IOMMU groups (legacy path) or none (cdev path: the kernel checks they are
   * bound to this process's iommufd). A `HotResetBlockedError` names the devices to open first; an
   * `UnsupportedError` says the kernel has no hot reset for this device.
   *
   * ```ts ignore
   * dev.hotReset();
   * ```
   */
  hotReset(): void {
    hotReset(this);
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
    const opened = Region.open(this, index, options);
    const region = this.own(mmioTraced() ? tracedRegion(opened) : opened);
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
  enableIrqs(index: IrqIndex, options?: IrqEnableOptions): IrqSet {
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

  /**
   * Registers a resource to be closed with this device (regions, IRQ sets, DMA buffers made on it). The
   * resource's own `close()` then also forgets it here, so a program that makes and closes buffers for a long
   * time does not keep the dead ones.
   */
  own<T extends Owned>(resource: T): T {
    this.fd;
    if (this.#owned.has(resource)) return resource;
    this.#owned.add(resource);
    const close = resource.close;
    const forget = (): void => void this.#owned.delete(resource);
    Object.defineProperty(resource, "close", {
      configurable: true,
      writable: true,
      value(this: T): void {
        forget();
        close.call(this);
      },
    });
    return resource;
  }

  /** Forgets a resource without closing it (it is no longer closed with the device). */
  disown(resource: Owned): void {
    this.#owned.delete(resource);
  }

  /**
   * Closes what the device owns, newest first (an IRQ set enabled after a buffer is closed before it), then the
   * device fd, then what it was opened through (group, then container). Every step runs even when one fails;
   * one error is thrown as it is, several as the platform's `SuppressedError` chain (the last failure, with the
   * earlier ones in `suppressed`). Idempotent.
   */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    const owned = [...this.#owned];
    this.#owned.clear();
    using stack = new DisposableStack(); // releases in reverse order of the defers
    for (const r of [...this.#after].reverse()) stack.defer(() => r.close());
    stack.defer(() => libc.close(fd, `device ${this.#name}`));
    for (const r of owned) stack.defer(() => r.close());
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** What `console.log(dev)` shows: address, IOMMU path, group type, open regions and IRQ sets, owned resources. */
  toJSON(): DeviceSummary {
    return {
      name: this.#name,
      iommu: this.#iommu,
      groupType: this.#groupType,
      closed: this.closed,
      regions: [...this.#regions.values()].filter((r) => !r.closed).map((r) => r.toJSON()),
      irqs: [...this.#owned].filter((r): r is IrqSet => r instanceof IrqSet && !r.closed).map((r) => r.toJSON()),
      owned: this.#owned.size,
    };
  }
}
inspectable(Device);

/** {@linkcode Device.toJSON}'s plain form of a device. */
export interface DeviceSummary {
  /** PCI address (or mdev UUID). */
  name: string;
  /** The IOMMU path. */
  iommu: IommuKind;
  /** What isolates its DMA. */
  groupType: GroupType;
  /** Whether it is closed. */
  closed: boolean;
  /** The regions opened through `region()`/`bar()`. */
  regions: RegionSummary[];
  /** The enabled IRQ sets. */
  irqs: IrqSetSummary[];
  /** How many resources it owns (regions, IRQ sets, DMA buffers and pools, config space). */
  owned: number;
}
