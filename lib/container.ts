/**
 * A legacy VFIO container (`/dev/vfio/vfio`): the IOMMU context that groups attach to. In type1 mode it is an
 * {@linkcode IoAddressSpace} (IOVA ranges, `MAP_DMA`/`UNMAP_DMA`); in no-IOMMU mode it only admits the group and
 * DMA uses physical addresses.
 *
 * ```ts
 * import { Container } from "@vfio-ts/vfio/iommu";
 * using container = Container.open();
 * console.log(container.checkExtension(3)); // VFIO_TYPE1v2_IOMMU supported?
 * ```
 * @module
 */
import { O_CLOEXEC, O_RDWR } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import {
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_GET_API_VERSION,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_NOIOMMU_IOMMU,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VfioIommuType1DmaMap,
  VfioIommuType1DmaUnmap,
  VfioIommuType1Info,
  VfioIommuType1InfoCapIovaRange,
  VfioIommuType1InfoDmaAvail,
  VfioIovaRange,
} from "./abi/vfio.ts";
import { ClosedError, OutOfRangeError, SystemError, UnsupportedError, VfioError } from "./errors.ts";
import { type AddressSpaceSummary, inspectable, spaceSummary } from "./inspect.ts";
import { explainMapError } from "./iommu/map_error.ts";
import type { IoAddressSpace, IovaRange } from "./iommu/types.ts";
import { capabilityChain, checkSpan, growingReply } from "./kernel_reply.ts";

/** What `VFIO_IOMMU_GET_INFO` reports for a type1 container. */
export interface Type1Info {
  /** Bitmap of supported IOMMU page sizes (bit n: 2^n bytes). */
  pageSizes: bigint;
  /** Usable IOVA ranges (the whole 64-bit space when the kernel reports none). */
  iovaRanges: IovaRange[];
  /** How many more DMA mappings the container allows (`dma_entry_limit`), when reported. */
  dmaAvailable: number | null;
}

const IOMMU_NAMES: Record<number, string> = {
  [VFIO_TYPE1_IOMMU]: "type1",
  [VFIO_TYPE1v2_IOMMU]: "type1v2",
  [VFIO_NOIOMMU_IOMMU]: "noiommu",
};

/**
 * Decodes a filled `vfio_iommu_type1_info` (with its capability chain) as {@linkcode Container.info} returns it.
 * Throws a `MalformedReplyError` for a chain or an IOVA range count that leaves the buffer.
 *
 * ```ts
 * import { VfioIommuType1Info } from "@vfio-ts/vfio/abi";
 * import { decodeType1Info } from "./container.ts";
 * decodeType1Info(VfioIommuType1Info.alloc().bytes).pageSizes; // 0x1000n
 * ```
 */
export function decodeType1Info(bytes: Uint8Array): Type1Info {
  const call = "VFIO_IOMMU_GET_INFO";
  const info = VfioIommuType1Info.view(bytes);
  const result: Type1Info = {
    pageSizes: info.flags & VFIO_IOMMU_INFO_PGSIZES ? info.iova_pgsizes : 0x1000n,
    iovaRanges: [],
    dmaAvailable: null,
  };
  if (info.flags & VFIO_IOMMU_INFO_CAPS) {
    for (const { id, offset } of capabilityChain(call, bytes, info.cap_offset, VfioIommuType1Info.size)) {
      if (id === VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
        checkSpan(call, bytes, offset, 1, VfioIommuType1InfoCapIovaRange.size, "IOVA range capability");
        const cap = VfioIommuType1InfoCapIovaRange.view(bytes, offset);
        const first = offset + VfioIommuType1InfoCapIovaRange.size;
        checkSpan(call, bytes, first, cap.nr_iovas, VfioIovaRange.size, "IOVA ranges");
        for (let i = 0; i < cap.nr_iovas; i++) {
          const r = VfioIovaRange.view(bytes, first + i * VfioIovaRange.size);
          result.iovaRanges.push({ start: r.start, end: r.end });
        }
      } else if (id === VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
        checkSpan(call, bytes, offset, 1, VfioIommuType1InfoDmaAvail.size, "DMA availability capability");
        result.dmaAvailable = VfioIommuType1InfoDmaAvail.view(bytes, offset).avail;
      }
    }
  }
  if (result.iovaRanges.length === 0) result.iovaRanges.push({ start: 0n, end: 0xffffffffffffffffn });
  return result;
}

/**
 * A VFIO container. Open it, attach one or more groups ({@linkcode Group.setContainer}), then pick the IOMMU
 * model with {@linkcode Container.setIommu}; in type1 mode map DMA memory through it.
 *
 * ```ts
 * import { Container } from "@vfio-ts/vfio/iommu";
 * using c = Container.open();
 * console.log(c.apiVersion, c.supportedIommuTypes());
 * ```
 */
export class Container implements IoAddressSpace {
  #fd: number;
  #path: string;
  #iommuType: number | null = null;
  #info: Type1Info | null = null;
  #mappings = new Map<bigint, number>();
  #groups = 0;

  private constructor(fd: number, path: string) {
    this.#fd = fd;
    this.#path = path;
  }

  /**
   * Opens a container (default `/dev/vfio/vfio`) and checks the API version.
   *
   * ```ts
   * import { Container } from "./container.ts";
   * const c = Container.open();
   * c.close();
   * ```
   */
  static open(path = "/dev/vfio/vfio"): Container {
    const fd = libc.open(path, O_RDWR | O_CLOEXEC, 0, "vfio-container");
    try {
      const version = libc.ioctlValue(fd, VFIO_GET_API_VERSION, 0, {
        target: "VFIO_GET_API_VERSION",
        kind: "vfio-ioctl",
      });
      if (version !== VFIO_API_VERSION) {
        throw new UnsupportedError(`${path} speaks VFIO API ${version}, vfio-ts speaks ${VFIO_API_VERSION}`);
      }
      return new Container(fd, path);
    } catch (e) {
      libc.close(fd);
      throw e;
    }
  }

  /**
   * Adopts an open container fd (e.g. received from a privileged helper over a UNIX socket) after checking its API
   * version; the container owns the fd from then on.
   *
   * ```ts ignore
   * const c = Container.fromFd(receivedFd);
   * ```
   */
  static fromFd(fd: number): Container {
    const version = libc.ioctlValue(fd, VFIO_GET_API_VERSION, 0, {
      target: "VFIO_GET_API_VERSION",
      kind: "vfio-ioctl",
    });
    if (version !== VFIO_API_VERSION) {
      throw new UnsupportedError(`fd ${fd} is not a VFIO container (API ${version}, not ${VFIO_API_VERSION})`);
    }
    return new Container(fd, `container fd ${fd}`);
  }

  /** The container fd (throws `ClosedError` after close). */
  get fd(): number {
    if (this.#fd < 0) throw new ClosedError(`container ${this.#path}`);
    return this.#fd;
  }

  /** The VFIO API version (always 0 for the kernels vfio-ts supports). */
  get apiVersion(): number {
    return libc.ioctlValue(this.fd, VFIO_GET_API_VERSION, 0, { target: "VFIO_GET_API_VERSION", kind: "vfio-ioctl" });
  }

  /** True when the kernel supports the given IOMMU model or extension (`VFIO_CHECK_EXTENSION`). */
  checkExtension(extension: number): boolean {
    if (!Number.isInteger(extension) || extension < 0 || extension > 0xffffffff) {
      throw new OutOfRangeError(`VFIO extension ${extension} is not a 32-bit unsigned integer`, {
        remedy: "pass a VFIO_* extension constant such as VFIO_TYPE1v2_IOMMU (3)",
      });
    }
    return libc.ioctlValue(this.fd, VFIO_CHECK_EXTENSION, extension, {
      target: "VFIO_CHECK_EXTENSION",
      kind: "vfio-ioctl",
    }) > 0;
  }

  /** The IOMMU models this container can be set to, by name (`type1v2`, `type1`, `noiommu`). */
  supportedIommuTypes(): string[] {
    return [VFIO_TYPE1v2_IOMMU, VFIO_TYPE1_IOMMU, VFIO_NOIOMMU_IOMMU].filter((t) => this.checkExtension(t)).map((t) =>
      IOMMU_NAMES[t]
    );
  }

  /** The IOMMU model set with {@linkcode setIommu}, or `null` before. */
  get iommuType(): number | null {
    return this.#iommuType;
  }

  /** True once {@linkcode setIommu} chose no-IOMMU mode. */
  get noiommu(): boolean {
    return this.#iommuType === VFIO_NOIOMMU_IOMMU;
  }

  /** Called by a group when it is attached/detached (the container needs a group before `setIommu`). */
  attached(delta: 1 | -1): void {
    this.#groups += delta;
  }

  /**
   * Sets the IOMMU model. Needs at least one group attached. With no argument picks type1v2, then type1; pass
   * `VFIO_NOIOMMU_IOMMU` for a no-IOMMU group. Calling it again with the model already set is a no-op.
   */
  setIommu(type?: number): number {
    if (this.#iommuType !== null) {
      if (type === undefined || type === this.#iommuType) return this.#iommuType;
      throw new VfioError(`container already uses ${IOMMU_NAMES[this.#iommuType]}`, {
        remedy: "open another container for a group that needs a different IOMMU model",
      });
    }
    if (this.#groups === 0) {
      throw new VfioError("set the IOMMU model after attaching a group", { remedy: "call group.setContainer() first" });
    }
    const candidates = type === undefined ? [VFIO_TYPE1v2_IOMMU, VFIO_TYPE1_IOMMU] : [type];
    const chosen = candidates.find((t) => this.checkExtension(t));
    if (chosen === undefined) {
      const what = candidates.map((t) => IOMMU_NAMES[t] ?? t).join(" or ");
      throw new UnsupportedError(`the kernel offers no ${what} IOMMU for this container`, {
        remedy: type === VFIO_NOIOMMU_IOMMU
          ? "enable no-IOMMU mode: echo 1 > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode"
          : "is the IOMMU on (intel_iommu=on / amd_iommu=on) and vfio_iommu_type1 loaded?",
      });
    }
    try {
      libc.ioctlValue(this.fd, VFIO_SET_IOMMU, chosen, { target: "VFIO_SET_IOMMU", kind: "vfio-ioctl" });
    } catch (e) {
      if (e instanceof SystemError && e.code === "EPERM" && chosen !== VFIO_NOIOMMU_IOMMU) {
        throw new VfioError(
          `VFIO_SET_IOMMU ${IOMMU_NAMES[chosen]} refused (EPERM): the IOMMU cannot remap interrupts`,
          {
            remedy: "enable interrupt remapping (intremap=on in the firmware/VM, and the kernel's IOMMU driver), or " +
              "knowingly load vfio_iommu_type1 with allow_unsafe_interrupts=1",
            cause: e,
          },
        );
      }
      throw e;
    }
    this.#iommuType = chosen;
    return chosen;
  }

  /** Type1 information: page sizes, IOVA ranges, mappings left. Cached after the first call. */
  info(): Type1Info {
    if (this.#info) return this.#info;
    if (this.#iommuType === null || this.noiommu) {
      throw new UnsupportedError("IOMMU info exists only for a type1 container", {
        remedy: "attach a group and call setIommu() first; no-IOMMU containers have no IOMMU",
      });
    }
    const call = "VFIO_IOMMU_GET_INFO";
    const info = growingReply(
      call,
      VfioIommuType1Info,
      (v) => void libc.ioctl(this.fd, VFIO_IOMMU_GET_INFO, v.bytes, { target: call, kind: "vfio-ioctl" }),
    );
    const result = decodeType1Info(info.bytes);
    this.#info = result;
    return result;
  }

  /** The IOVA ranges the IOMMU accepts. */
  get iovaRanges(): readonly IovaRange[] {
    return this.info().iovaRanges;
  }

  /** Bitmap of supported IOMMU page sizes. */
  get pageSizes(): bigint {
    return this.info().pageSizes;
  }

  /**
   * Maps `sizeBytes` of process memory at `vaddr` to `iova` for device reads and writes (`VFIO_IOMMU_MAP_DMA`).
   *
   * ```ts ignore
   * container.mapDma(buffer.vaddr, 0x100000n, 4096);
   * ```
   */
  mapDma(vaddr: bigint, iova: bigint, sizeBytes: number): void {
    if (this.noiommu || this.#iommuType === null) {
      throw new UnsupportedError("this container has no IOMMU to map DMA through", {
        remedy: "in no-IOMMU mode use physical addresses (DmaBuffer.busAddress does this for you)",
      });
    }
    const map = VfioIommuType1DmaMap.alloc();
    map.argsz = VfioIommuType1DmaMap.size;
    map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
    map.vaddr = vaddr;
    map.iova = iova;
    map.size = BigInt(sizeBytes);
    try {
      libc.ioctl(this.fd, VFIO_IOMMU_MAP_DMA, map.bytes, { target: "VFIO_IOMMU_MAP_DMA", kind: "vfio-ioctl" });
    } catch (e) {
      throw explainMapError(e, "VFIO_IOMMU_MAP_DMA", iova, sizeBytes);
    }
    this.#mappings.set(iova, sizeBytes);
  }

  /** Removes a mapping made by {@linkcode mapDma}, exactly (type1v2 refuses to split one). */
  unmapDma(iova: bigint, sizeBytes: number): void {
    const unmap = VfioIommuType1DmaUnmap.alloc();
    unmap.argsz = VfioIommuType1DmaUnmap.size;
    unmap.iova = iova;
    unmap.size = BigInt(sizeBytes);
    libc.ioctl(this.fd, VFIO_IOMMU_UNMAP_DMA, unmap.bytes, { target: "VFIO_IOMMU_UNMAP_DMA", kind: "vfio-ioctl" });
    this.#mappings.delete(iova);
  }

  /** The mappings currently made through this container, IOVA → size. */
  get mappings(): ReadonlyMap<bigint, number> {
    return this.#mappings;
  }

  /** Unmaps every DMA mapping still made and closes the container (idempotent). */
  close(): void {
    if (this.#fd < 0) return;
    for (const [iova, size] of [...this.#mappings]) {
      try {
        this.unmapDma(iova, size);
      } catch { /* the kernel drops the mappings with the fd anyway */ }
    }
    const fd = this.#fd;
    this.#fd = -1;
    libc.close(fd, this.#path);
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** What `console.log(container)` shows: node, IOMMU model, groups, IOVA ranges and DMA mappings. */
  toJSON(): AddressSpaceSummary {
    const type = this.#iommuType === null ? "unset" : this.noiommu ? "noiommu" : `type1 (${this.#iommuType})`;
    const ranges = this.#info?.iovaRanges;
    return spaceSummary({ path: this.#path, iommu: type, groups: this.#groups }, this.#fd < 0, ranges, this.#mappings);
  }
}
inspectable(Container);
