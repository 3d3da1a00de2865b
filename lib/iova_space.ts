/**
 * Caller-owned IOVA spaces. By default every device a process opens shares one container (type1) or IOAS
 * (iommufd), so a DMA buffer made for one works for all. An {@linkcode IovaSpace} is one such space the caller
 * makes and passes to `openDevice(address, { space })`: devices opened into different spaces are isolated from
 * each other (each sees only what its own space maps, and both may use the same IOVAs for different memory);
 * devices opened into the same space share it deliberately. The caller closes the space after its devices.
 *
 * ```ts
 * import { createIovaSpace, openDevice } from "@vfio-ts/vfio";
 * using a = createIovaSpace();
 * using b = createIovaSpace();
 * using edu = openDevice("0000:00:03.0", { space: a });
 * using nvme = openDevice("0000:00:04.0", { space: b }); // cannot reach edu's buffers
 * ```
 * @module
 */
import { existsSync } from "node:fs";
import { Container } from "./container.ts";
import { allocDma, type DmaBuffer, type DmaBufferOptions } from "./dma/buffer.ts";
import { ClosedError, UnsupportedError, VfioError } from "./errors.ts";
import { type AddressSpaceSummary, inspectable } from "./inspect.ts";
import { type Ioas, Iommufd } from "./iommu/iommufd.ts";
import { IovaMapper } from "./iommu/iova_mapper.ts";
import type { DmaMapper } from "./iommu/types.ts";

/** Which kind of IOMMU context a space is: an iommufd IOAS (device cdevs) or a type1 container (legacy groups). */
export type IovaSpaceKind = "iommufd" | "type1";

/** Options of {@linkcode createIovaSpace}. */
export interface IovaSpaceOptions {
  /** `iommufd` (default when `/dev/iommu` exists) or `type1`. */
  kind?: IovaSpaceKind;
  /** The lowest IOVA its DMA buffers get (see `OpenDeviceOptions.iovaBase`). */
  iovaBase?: bigint;
  /**
   * An already open descriptor to build the space on instead of opening one: an iommufd (`/dev/iommu`) for
   * `iommufd`, a container (`/dev/vfio/vfio`) for `type1`, e.g. received from a privileged helper. The space owns
   * it from then on and closes it.
   */
  fd?: number;
  /** The VFIO node directory for a type1 container (tests; default `/dev/vfio`). */
  devDir?: string;
}

/** What a device opened into the space holds: the space's parts, and a `close()` that lets go of it. */
export interface IovaSpaceLease {
  /** The parts the open paths use. */
  readonly value: {
    readonly mapper: DmaMapper;
    readonly container?: Container;
    readonly iommufd?: Iommufd;
    readonly ioas?: Ioas;
    readonly iovaBase?: bigint;
  };
  /** Lets go of the space (idempotent). */
  close(): void;
  /** Same as `close()`. */
  [Symbol.dispose](): void;
}

/**
 * An IOVA space the caller owns: a type1 container or an iommufd IOAS, with its IOVA allocator and mapper. See
 * the module documentation; make one with {@linkcode createIovaSpace}.
 *
 * ```ts
 * import { createIovaSpace } from "@vfio-ts/vfio";
 * using space = createIovaSpace({ kind: "iommufd" });
 * console.log(space.kind, space.devices);
 * ```
 */
export class IovaSpace {
  readonly #kind: IovaSpaceKind;
  readonly #container: Container | undefined;
  readonly #iommufd: Iommufd | undefined;
  readonly #ioas: Ioas | undefined;
  readonly #mapper: IovaMapper;
  readonly #iovaBase: bigint | undefined;
  #devices = 0;
  #closed = false;

  private constructor(
    kind: IovaSpaceKind,
    parts: { container?: Container; iommufd?: Iommufd; ioas?: Ioas },
    iovaBase: bigint | undefined,
  ) {
    this.#kind = kind;
    this.#container = parts.container;
    this.#iommufd = parts.iommufd;
    this.#ioas = parts.ioas;
    this.#iovaBase = iovaBase;
    const space = parts.ioas ?? parts.container!;
    this.#mapper = new IovaMapper(space, { kind: kind === "iommufd" ? "iommufd" : "type1", iovaBase });
  }

  /** Opens (or adopts `options.fd` as) a new space; see {@linkcode createIovaSpace}. */
  static create(options: IovaSpaceOptions = {}): IovaSpace {
    const kind = options.kind ?? (existsSync("/dev/iommu") ? "iommufd" : "type1");
    if (kind === "type1") {
      const container = options.fd === undefined
        ? Container.open(`${options.devDir ?? "/dev/vfio"}/vfio`)
        : Container.fromFd(options.fd);
      return new IovaSpace(kind, { container }, options.iovaBase);
    }
    if (kind !== "iommufd") {
      throw new UnsupportedError(`"${kind}" is not a kind of IOVA space`, {
        remedy: 'use "iommufd" or "type1"; without an IOMMU there is no IOVA space (bus addresses are physical)',
      });
    }
    const iommufd = options.fd === undefined ? Iommufd.open() : Iommufd.fromFd(options.fd);
    try {
      return new IovaSpace(kind, { iommufd, ioas: iommufd.allocIoas() }, options.iovaBase);
    } catch (e) {
      iommufd.close();
      throw e;
    }
  }

  /** `iommufd` or `type1`. */
  get kind(): IovaSpaceKind {
    return this.#kind;
  }

  /** The mapper that gives bus addresses in this space (what the devices opened into it use). */
  get mapper(): DmaMapper {
    if (this.#closed) throw new ClosedError("IOVA space");
    return this.#mapper;
  }

  /** The type1 container (type1 spaces). */
  get container(): Container | undefined {
    return this.#container;
  }

  /** The iommufd (iommufd spaces). */
  get iommufd(): Iommufd | undefined {
    return this.#iommufd;
  }

  /** The IOAS (iommufd spaces). */
  get ioas(): Ioas | undefined {
    return this.#ioas;
  }

  /** How many open devices use the space. */
  get devices(): number {
    return this.#devices;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * A DMA buffer mapped in this space, owned by the caller (close it before the space): reachable by every device
   * opened into the space.
   */
  allocDma(sizeBytes: number, options?: DmaBufferOptions): DmaBuffer {
    return allocDma(this.mapper, sizeBytes, options);
  }

  /**
   * For the open paths: a device opened into the space holds a lease until it closes. `path` is the IOMMU path the
   * device is opened through; it must be the space's kind.
   */
  lease(path: string): IovaSpaceLease {
    if (this.#closed) throw new ClosedError("IOVA space");
    const fits = this.#kind === "type1" ? path === "type1" : path === "iommufd";
    if (!fits) {
      throw new VfioError(`an ${this.#kind} IOVA space cannot take a device opened through the ${path} path`, {
        remedy: this.#kind === "type1"
          ? "open the device with iommu: type1, or make the space with kind: iommufd"
          : "open the device with iommu: iommufd (its cdev), or make the space with kind: type1",
      });
    }
    this.#devices++;
    let held = true;
    const release = (): void => {
      if (held) this.#devices--;
      held = false;
    };
    return {
      value: {
        mapper: this.#mapper,
        container: this.#container,
        iommufd: this.#iommufd,
        ioas: this.#ioas,
        iovaBase: this.#iovaBase,
      },
      close(): void {
        release();
      },
      [Symbol.dispose](): void {
        release();
      },
    };
  }

  /** Unmaps what is still mapped and closes the container or iommufd; refused while devices use the space. */
  close(): void {
    if (this.#closed) return;
    if (this.#devices > 0) {
      throw new VfioError(`the IOVA space is still used by ${this.#devices} open device(s)`, {
        remedy: "close the devices opened into it first",
      });
    }
    this.#closed = true;
    try {
      this.#mapper.close();
    } finally {
      (this.#iommufd ?? this.#container)!.close();
    }
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** What `console.log(space)` shows: its kind, devices, and the container's or IOAS's state. */
  toJSON(): { kind: IovaSpaceKind; devices: number; closed: boolean; space: AddressSpaceSummary } {
    const space = (this.#ioas ?? this.#container)!.toJSON();
    return { kind: this.#kind, devices: this.#devices, closed: this.#closed, space };
  }
}
inspectable(IovaSpace);

/**
 * Makes an IOVA space of the caller's own (see {@linkcode IovaSpace}); `openDevice(address, { space })` opens
 * devices into it.
 *
 * ```ts
 * import { createIovaSpace, openDevice } from "@vfio-ts/vfio";
 * using shared = createIovaSpace();
 * using edu = openDevice("0000:00:03.0", { space: shared });
 * using nvme = openDevice("0000:00:04.0", { space: shared }); // reaches the buffers edu's DMA uses
 * ```
 */
export function createIovaSpace(options: IovaSpaceOptions = {}): IovaSpace {
  return IovaSpace.create(options);
}
