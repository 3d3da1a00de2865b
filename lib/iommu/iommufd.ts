/**
 * The iommufd backend (Linux ≥ 6.2): `/dev/iommu` holds I/O address spaces (IOAS); a VFIO device opened as a
 * cdev (`/dev/vfio/devices/vfioN`) is bound to the iommufd and attached to an IOAS. An {@linkcode Ioas} is an
 * {@linkcode IoAddressSpace}, so DMA buffers map through it exactly as through a type1 container.
 *
 * ```ts
 * import { Iommufd } from "@vfio-ts/vfio/iommu";
 * using iommufd = Iommufd.open();
 * const ioas = iommufd.allocIoas();
 * console.log(ioas.iovaRanges);
 * ```
 * @module
 */
import { O_CLOEXEC, O_RDWR } from "../../ffi/constants.ts";
import { libc } from "../../ffi/libc.ts";
import {
  IOMMU_DESTROY,
  IOMMU_GET_HW_INFO,
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP,
  IOMMU_VFIO_IOAS,
  IOMMU_VFIO_IOAS_GET,
  IommuDestroy,
  IommuHwInfo,
  IommuIoasAlloc,
  IommuIoasIovaRanges,
  IommuIoasMap,
  IommuIoasUnmap,
  IommuIovaRange,
  IommuVfioIoas,
} from "../abi/iommufd.ts";
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VfioDeviceAttachIommufdPt,
  VfioDeviceBindIommufd,
  VfioDeviceDetachIommufdPt,
} from "../abi/vfio.ts";
import { ClosedError, SystemError, VfioError } from "../errors.ts";
import { type AddressSpaceSummary, inspectable, spaceSummary } from "../inspect.ts";
import { replyBytes } from "../kernel_reply.ts";
import { explainMapError } from "./map_error.ts";
import type { IoAddressSpace, IovaRange } from "./types.ts";

/** What `IOMMU_GET_HW_INFO` says about the IOMMU behind a bound device. */
export interface IommuHwInfoResult {
  /** `IOMMU_HW_INFO_TYPE_*` (1: Intel VT-d). */
  type: number;
  /** A readable name of the type. */
  typeName: string;
  /** `IOMMU_HW_CAP_*` bits. */
  capabilities: bigint;
}

/**
 * An open `/dev/iommu`.
 *
 * ```ts
 * import { Iommufd } from "@vfio-ts/vfio/iommu";
 * const fd = Iommufd.open();
 * fd.close();
 * ```
 */
export class Iommufd {
  #fd: number;
  readonly #ioas = new Set<Ioas>();
  #groups = 0;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Opens the iommufd (default `/dev/iommu`). */
  static open(path = "/dev/iommu"): Iommufd {
    try {
      return new Iommufd(libc.open(path, O_RDWR | O_CLOEXEC, 0, "iommufd"));
    } catch (e) {
      if (e instanceof SystemError && e.code === "ENOENT") {
        throw new VfioError(`${path} does not exist: this kernel has no iommufd`, {
          remedy: "load the iommufd module (modprobe iommufd) or use the legacy group path (iommu: type1)",
          cause: e,
        });
      }
      throw e;
    }
  }

  /**
   * Adopts an open iommufd (e.g. received from a privileged helper over a UNIX socket); it owns the fd from then on.
   *
   * ```ts ignore
   * const iommufd = Iommufd.fromFd(receivedFd);
   * ```
   */
  static fromFd(fd: number): Iommufd {
    if (!Number.isInteger(fd) || fd < 0) throw new VfioError(`${fd} is not a file descriptor`);
    return new Iommufd(fd);
  }

  /** The iommufd file descriptor (throws `ClosedError` after close). */
  get fd(): number {
    if (this.#fd < 0) throw new ClosedError("iommufd");
    return this.#fd;
  }

  /** Called by a group attached to this iommufd as its container (the compat form). */
  attached(delta: 1 | -1): void {
    this.#groups += delta;
  }

  /** How many legacy groups use this iommufd as their container. */
  get attachedGroups(): number {
    return this.#groups;
  }

  /** Allocates a new, empty I/O address space. */
  allocIoas(): Ioas {
    const a = IommuIoasAlloc.alloc();
    a.size = IommuIoasAlloc.size;
    libc.ioctl(this.fd, IOMMU_IOAS_ALLOC, a.bytes, { target: "IOMMU_IOAS_ALLOC", kind: "iommufd-ioctl" });
    const ioas = new Ioas(this, a.out_ioas_id);
    this.#ioas.add(ioas);
    return ioas;
  }

  /**
   * The IOAS that a legacy group attached to this iommufd as its "container" uses (the compat form:
   * `VFIO_GROUP_SET_CONTAINER` with the iommufd fd), via `IOMMU_VFIO_IOAS`.
   */
  compatIoas(): Ioas {
    const v = IommuVfioIoas.alloc();
    v.size = IommuVfioIoas.size;
    v.op = IOMMU_VFIO_IOAS_GET;
    libc.ioctl(this.fd, IOMMU_VFIO_IOAS, v.bytes, { target: "IOMMU_VFIO_IOAS", kind: "iommufd-ioctl" });
    const ioas = new Ioas(this, v.ioas_id, false);
    this.#ioas.add(ioas);
    return ioas;
  }

  /** Destroys an iommufd object (IOAS, hardware page table …) by id. */
  destroy(id: number): void {
    const d = IommuDestroy.alloc();
    d.size = IommuDestroy.size;
    d.id = id;
    libc.ioctl(this.fd, IOMMU_DESTROY, d.bytes, { target: "IOMMU_DESTROY", kind: "iommufd-ioctl" });
  }

  /** `IOMMU_GET_HW_INFO` for a device bound to this iommufd. */
  hwInfo(devId: number): IommuHwInfoResult {
    const h = IommuHwInfo.alloc();
    h.size = IommuHwInfo.size;
    h.dev_id = devId;
    libc.ioctl(this.fd, IOMMU_GET_HW_INFO, h.bytes, { target: "IOMMU_GET_HW_INFO", kind: "iommufd-ioctl" });
    const typeName = h.out_data_type === IOMMU_HW_INFO_TYPE_INTEL_VTD ? "intel-vtd" : `type ${h.out_data_type}`;
    return { type: h.out_data_type, typeName, capabilities: h.out_capabilities };
  }

  /** Forgets an IOAS closed on its own. */
  forget(ioas: Ioas): void {
    this.#ioas.delete(ioas);
  }

  /** Destroys every IOAS made here and closes the fd (idempotent). */
  close(): void {
    if (this.#fd < 0) return;
    for (const ioas of [...this.#ioas]) {
      try {
        ioas.close();
      } catch { /* closing the fd frees them anyway */ }
    }
    const fd = this.#fd;
    this.#fd = -1;
    libc.close(fd, "/dev/iommu");
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** What `console.log(iommufd)` shows: open or closed, its IOASes, compat groups attached. */
  toJSON(): { fd: number; closed: boolean; ioas: number[]; groups: number } {
    return {
      fd: this.#fd,
      closed: this.#fd < 0,
      ioas: [...this.#ioas].map((i) => i.toJSON().id ?? -1),
      groups: this.#groups,
    };
  }
}
inspectable(Iommufd);

/**
 * An iommufd I/O address space: IOVA ranges, and `IOMMU_IOAS_MAP`/`UNMAP` at fixed IOVAs.
 *
 * ```ts
 * import { Iommufd } from "@vfio-ts/vfio/iommu";
 * using iommufd = Iommufd.open();
 * using ioas = iommufd.allocIoas();
 * console.log(ioas.id, ioas.iovaRanges);
 * ```
 */
export class Ioas implements IoAddressSpace {
  readonly #iommufd: Iommufd;
  readonly #id: number;
  readonly #owned: boolean;
  #closed = false;
  #mappings = new Map<bigint, number>();
  #ranges: IovaRange[] | null = null;
  #alignment = 0x1000n;

  /** Wraps IOAS `id` of `iommufd`; `owned` IOASes are destroyed on close. Prefer {@linkcode Iommufd.allocIoas}. */
  constructor(iommufd: Iommufd, id: number, owned = true) {
    this.#iommufd = iommufd;
    this.#id = id;
    this.#owned = owned;
  }

  /** The IOAS object id. */
  get id(): number {
    if (this.#closed) throw new ClosedError(`IOAS ${this.#id}`);
    return this.#id;
  }

  #load(): IovaRange[] {
    if (this.#ranges) return this.#ranges;
    let n = 8;
    for (let attempt = 0; attempt < 4; attempt++) {
      const ranges = new Uint8Array(n * IommuIovaRange.size);
      const r = IommuIoasIovaRanges.alloc();
      r.size = IommuIoasIovaRanges.size;
      r.ioas_id = this.id;
      r.num_iovas = n;
      r.allowed_iovas = libc.addressOf(ranges);
      try {
        libc.ioctl(this.#iommufd.fd, IOMMU_IOAS_IOVA_RANGES, r.bytes, {
          target: "IOMMU_IOAS_IOVA_RANGES",
          kind: "iommufd-ioctl",
        });
      } catch (e) {
        if (e instanceof SystemError && e.code === "EMSGSIZE") {
          n = replyBytes("IOMMU_IOAS_IOVA_RANGES", r.num_iovas * IommuIovaRange.size, 1) / IommuIovaRange.size;
          continue;
        }
        throw e;
      }
      const out: IovaRange[] = [];
      for (let i = 0; i < r.num_iovas; i++) {
        const v = IommuIovaRange.view(ranges, i * IommuIovaRange.size);
        out.push({ start: v.start, end: v.last });
      }
      this.#alignment = r.out_iova_alignment || 0x1000n;
      this.#ranges = out;
      return out;
    }
    throw new VfioError(`IOAS ${this.#id}: the IOVA range list keeps changing size`);
  }

  /** The IOVA ranges the attached devices' IOMMUs accept (re-read after attaching devices). */
  get iovaRanges(): readonly IovaRange[] {
    return this.#load();
  }

  /** The IOVA alignment the IOAS requires, as a one-bit page-size bitmap. */
  get pageSizes(): bigint {
    this.#load();
    return this.#alignment;
  }

  /** Forgets the cached ranges (call after attaching a device: its IOMMU may narrow them). */
  refresh(): void {
    this.#ranges = null;
  }

  /** Maps `sizeBytes` at `vaddr` to `iova` (`IOMMU_IOAS_MAP` with a fixed IOVA, read + write). */
  mapDma(vaddr: bigint, iova: bigint, sizeBytes: number): void {
    const m = IommuIoasMap.alloc();
    m.size = IommuIoasMap.size;
    m.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
    m.ioas_id = this.id;
    m.user_va = vaddr;
    m.length = BigInt(sizeBytes);
    m.iova = iova;
    try {
      libc.ioctl(this.#iommufd.fd, IOMMU_IOAS_MAP, m.bytes, { target: "IOMMU_IOAS_MAP", kind: "iommufd-ioctl" });
    } catch (e) {
      throw explainMapError(e, "IOMMU_IOAS_MAP", iova, sizeBytes, this.iovaRanges);
    }
    this.#mappings.set(iova, sizeBytes);
  }

  /** Unmaps a range mapped by {@linkcode mapDma}. */
  unmapDma(iova: bigint, sizeBytes: number): void {
    const u = IommuIoasUnmap.alloc();
    u.size = IommuIoasUnmap.size;
    u.ioas_id = this.id;
    u.iova = iova;
    u.length = BigInt(sizeBytes);
    libc.ioctl(this.#iommufd.fd, IOMMU_IOAS_UNMAP, u.bytes, { target: "IOMMU_IOAS_UNMAP", kind: "iommufd-ioctl" });
    this.#mappings.delete(iova);
  }

  /** Unmaps what is still mapped and destroys the IOAS (idempotent). */
  close(): void {
    if (this.#closed) return;
    for (const [iova, size] of [...this.#mappings]) {
      try {
        this.unmapDma(iova, size);
      } catch { /* destroying the IOAS drops them */ }
    }
    this.#closed = true;
    this.#iommufd.forget(this);
    if (this.#owned) this.#iommufd.destroy(this.#id);
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** What `console.log(ioas)` shows: its id, IOVA ranges (once read) and DMA mappings. */
  toJSON(): AddressSpaceSummary {
    return spaceSummary({ id: this.#id, iommu: "iommufd" }, this.#closed, this.#ranges ?? undefined, this.#mappings);
  }
}
inspectable(Ioas);

/** A device cdev bound to an iommufd: its device id and the IOAS it is attached to. */
export interface IommufdBinding {
  /** The device's id within the iommufd. */
  devId: number;
}

/**
 * Binds an open device cdev to `iommufd` (`VFIO_DEVICE_BIND_IOMMUFD`), with the errors a user can act on.
 *
 * ```ts ignore
 * const { devId } = bindIommufd(deviceFd, iommufd, "0000:00:03.0");
 * ```
 */
export function bindIommufd(deviceFd: number, iommufd: Iommufd, name: string): IommufdBinding {
  const b = VfioDeviceBindIommufd.alloc();
  b.argsz = VfioDeviceBindIommufd.size;
  b.iommufd = iommufd.fd;
  try {
    libc.ioctl(deviceFd, VFIO_DEVICE_BIND_IOMMUFD, b.bytes, { target: "VFIO_DEVICE_BIND_IOMMUFD", kind: "vfio-ioctl" });
  } catch (e) {
    if (e instanceof SystemError && e.code === "EPERM") {
      throw new VfioError(`${name}: iommufd refused the device (EPERM)`, {
        remedy: "either its IOMMU group is not viable (bind every member to vfio-pci) or the IOMMU lacks interrupt " +
          "remapping (intremap=on, or knowingly load iommufd with allow_unsafe_interrupts=1)",
        cause: e,
      });
    }
    if (e instanceof SystemError && e.code === "EBUSY") {
      throw new VfioError(`${name} is already open through its group (or bound to another iommufd)`, {
        remedy: "close the group-path Device first: a device is opened through its group or its cdev, not both",
        cause: e,
      });
    }
    throw e;
  }
  return { devId: b.out_devid };
}

/** Attaches a bound device cdev to an IOAS (`VFIO_DEVICE_ATTACH_IOMMUFD_PT`). */
export function attachIoas(deviceFd: number, ioas: Ioas, name: string): void {
  const a = VfioDeviceAttachIommufdPt.alloc();
  a.argsz = VfioDeviceAttachIommufdPt.size;
  a.pt_id = ioas.id;
  try {
    libc.ioctl(deviceFd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, a.bytes, {
      target: "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
      kind: "vfio-device-ioctl",
    });
  } catch (e) {
    if (e instanceof SystemError && e.code === "EPERM") {
      throw new VfioError(`${name}: attaching to the IOAS was refused: no interrupt remapping`, {
        remedy: "enable interrupt remapping (intremap=on)",
        cause: e,
      });
    }
    throw e;
  }
  ioas.refresh();
}

/** Detaches a device cdev from its IOAS (`VFIO_DEVICE_DETACH_IOMMUFD_PT`). */
export function detachIoas(deviceFd: number): void {
  const d = VfioDeviceDetachIommufdPt.alloc();
  d.argsz = VfioDeviceDetachIommufdPt.size;
  libc.ioctl(deviceFd, VFIO_DEVICE_DETACH_IOMMUFD_PT, d.bytes, {
    target: "VFIO_DEVICE_DETACH_IOMMUFD_PT",
    kind: "vfio-device-ioctl",
  });
}
