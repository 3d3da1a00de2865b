/**
 * The three ways the kernel hands out a VFIO device, each ending in a {@linkcode Device}:
 * - through its **group** attached to a legacy container (`type1`, or `noiommu` for a no-IOMMU group),
 * - through its group attached to **`/dev/iommu` as the container** (the iommufd compat form),
 * - through its **device cdev** bound to an iommufd and attached to an IOAS.
 *
 * Containers, IOASes and groups are shared per process and reference counted: devices opened through one path
 * share one IOVA space, so a DMA buffer made for one works for the others. `openDevice()` (`lib/open.ts`) picks
 * the path for a PCI address; these functions are for callers that know theirs (mediated devices, tests).
 *
 * ```ts
 * import { openThroughCdev, openThroughGroup } from "@vfio-ts/vfio/iommu";
 * using a = openThroughGroup("0000:00:03.0", 3, { path: "type1" });
 * using b = openThroughCdev("0000:00:04.0", "/dev/vfio/devices/vfio1");
 * ```
 * @module
 */
import { basename } from "node:path";
import { O_CLOEXEC, O_RDWR } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import { VFIO_NOIOMMU_IOMMU } from "./abi/vfio.ts";
import { Container } from "./container.ts";
import { Device, type Owned } from "./device.ts";
import { DeviceBusyError, SystemError, VfioError } from "./errors.ts";
import { Group, nodeHolders } from "./group.ts";
import { hex } from "./hex.ts";
import { rememberGroup } from "./hot_reset.ts";
import { attachIoas, bindIommufd, type Ioas, Iommufd } from "./iommu/iommufd.ts";
import { IovaMapper } from "./iommu/iova_mapper.ts";
import { NoiommuMapper } from "./iommu/noiommu.ts";
import type { DmaMapper } from "./iommu/types.ts";
import type { IovaSpace } from "./iova_space.ts";
import { readLinkName } from "./sysfs/attr.ts";
import type { GroupType } from "./sysfs/iommu_group.ts";

/** The container a group is attached to: a legacy container (`type1`, `noiommu`) or `/dev/iommu` (`compat`). */
export type GroupPath = "type1" | "noiommu" | "compat";

/** Options of {@linkcode openThroughGroup}. */
export interface GroupPathOptions {
  /**
   * Which container the group is attached to. `"noiommu"` written in the code is this low-level call's explicit
   * opt-in to a no-IOMMU group (unchecked DMA); the environment is never consulted, and any other path refuses a
   * no-IOMMU group with a `NoiommuError`.
   */
  path: GroupPath;
  /** Where the group nodes are (default `/dev/vfio`). */
  devDir?: string;
  /** The group's kind, reported by `Device.groupType` (default: `noiommu` on that path, else `iommu`). */
  groupType?: GroupType;
  /**
   * The lowest IOVA of the shared IOVA space (see `IovaMapperOptions.iovaBase`; default: `VFIO_TS_IOVA_BASE`;
   * ignored on the no-IOMMU path).
   */
  iovaBase?: bigint;
  /** A caller-owned IOVA space (type1) to open the device into instead of the shared one. */
  space?: IovaSpace;
  /** The VF token (a UUID) to open the device with: see `OpenDeviceOptions.vfToken`. */
  vfToken?: string;
}

/** Options of {@linkcode openThroughCdev}. */
export interface CdevPathOptions {
  /** The device's group kind, reported by `Device.groupType` (default `iommu`). */
  groupType?: GroupType;
  /** The lowest IOVA of the shared IOVA space (see `IovaMapperOptions.iovaBase`; default: `VFIO_TS_IOVA_BASE`). */
  iovaBase?: bigint;
  /** A caller-owned IOVA space (iommufd) to open the device into instead of the shared one. */
  space?: IovaSpace;
}

/** A process-wide shared object with a reference count. */
class Shared<T extends Owned> implements Owned {
  #refs = 1;
  constructor(readonly value: T, readonly onLast: () => void) {}
  ref(): this {
    this.#refs++;
    return this;
  }
  close(): void {
    if (this.#refs === 0) return;
    if (--this.#refs === 0) {
      this.onLast();
      this.value.close();
    }
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

/** An IOMMU context shared by devices: the container or iommufd, and the mapper of its IOVA space. */
interface Context extends Owned {
  mapper: DmaMapper;
  container?: Container;
  iommufd?: Iommufd;
  ioas?: Ioas;
  iovaBase?: bigint;
}

const contexts = new Map<string, Shared<Context>>();
const groups = new Map<number, Shared<Group>>();

function acquire(key: string, make: () => Context, iovaBase?: bigint): Shared<Context> {
  const existing = contexts.get(key);
  if (existing && existing.value.iovaBase !== iovaBase) {
    const show = (b?: bigint): string => (b === undefined ? "the default" : hex(b));
    throw new VfioError(
      `the ${key} IOVA space this device would share was opened with IOVA base ${show(existing.value.iovaBase)}, ` +
        `not ${show(iovaBase)}`,
      { remedy: "open every device of the process with the same iovaBase (their DMA buffers are shared)" },
    );
  }
  if (existing) return existing.ref();
  const shared = new Shared(make(), () => contexts.delete(key));
  contexts.set(key, shared);
  return shared;
}

function legacyContext(path: "type1" | "noiommu", devDir: string, iovaBase?: bigint): Context {
  const container = Container.open(`${devDir}/vfio`);
  const mapper = path === "noiommu" ? new NoiommuMapper() : new IovaMapper(container, { iovaBase });
  return {
    iovaBase,
    container,
    mapper,
    close: closeMapperThen(() => mapper, container),
  };
}

function iommufdContext(iovaBase?: bigint): Context {
  const iommufd = Iommufd.open();
  let ioas: Ioas;
  try {
    ioas = iommufd.allocIoas();
  } catch (e) {
    iommufd.close();
    throw e;
  }
  const mapper = new IovaMapper(ioas, { kind: "iommufd", iovaBase });
  return {
    iovaBase,
    iommufd,
    ioas,
    mapper,
    close: closeMapperThen(() => mapper, iommufd),
  };
}

/** The compat form: the iommufd whose compat IOAS the groups share (the IOAS exists once a group is attached). */
function compatContext(iovaBase?: bigint): Context {
  const iommufd = Iommufd.open();
  let mapper: IovaMapper | null = null;
  const ctx: Context = {
    iovaBase,
    iommufd,
    get mapper(): DmaMapper {
      mapper ??= new IovaMapper(iommufd.compatIoas(), { kind: "iommufd", iovaBase });
      return mapper;
    },
    close: closeMapperThen(() => mapper, iommufd),
  };
  return ctx;
}

/** A context's close: its mapper (if made), then the container or iommufd it maps through, also when the first throws. */
function closeMapperThen(mapper: () => DmaMapper | null, owner: { close(): void }): () => void {
  return () => {
    try {
      mapper()?.close();
    } finally {
      owner.close();
    }
  };
}

/** `VFIO_TS_IOVA_BASE` (hex or decimal, `_` allowed): the IOVA base when the caller gives none. */
function environmentIovaBase(): bigint | undefined {
  const v = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.VFIO_TS_IOVA_BASE;
  if (v === undefined || v === "") return undefined;
  const text = v.replaceAll("_", "");
  if (/^(0x[0-9a-f]+|[0-9]+)$/i.test(text)) return BigInt(text);
  throw new VfioError(`VFIO_TS_IOVA_BASE=${v} is not an address`, {
    remedy: "give it in hex (0x100000000) or decimal",
  });
}

/** A chosen IOVA base is checked against the space's ranges when the device opens, not at its first DMA map. */
function checkIovaBase(ctx: Pick<Context, "iovaBase" | "mapper">): void {
  if (ctx.iovaBase !== undefined && ctx.mapper instanceof IovaMapper) void ctx.mapper.allocator;
}

function acquireGroup(n: number, noiommu: boolean, devDir: string): Shared<Group> {
  const existing = groups.get(n);
  if (existing) return existing.ref();
  const shared = new Shared(Group.open(n, { noiommu, devDir }), () => groups.delete(n));
  groups.set(n, shared);
  return shared;
}

/**
 * Opens device `name` (a PCI address, or a mediated device's UUID) of IOMMU group `group` through the group.
 * Releases everything it made when a step fails.
 */
export function openThroughGroup(name: string, group: number, options: GroupPathOptions): Device {
  const devDir = options.devDir ?? "/dev/vfio";
  const path = options.path;
  // Released in reverse on a failure (a failing release joins the error as a SuppressedError); the Device takes
  // everything over on success.
  using made = new DisposableStack();
  const base = path === "noiommu" ? undefined : options.iovaBase ?? environmentIovaBase();
  const ctx = made.use(
    options.space
      ? options.space.lease(path)
      : path === "compat"
      ? acquire("compat", () => compatContext(base), base)
      : acquire(path, () => legacyContext(path, devDir, base), base),
  );
  const g = made.use(acquireGroup(group, path === "noiommu", devDir));
  if (path === "compat") {
    g.value.setContainer(ctx.value.iommufd!);
  } else {
    g.value.setContainer(ctx.value.container!);
    ctx.value.container!.setIommu(path === "noiommu" ? VFIO_NOIOMMU_IOMMU : undefined);
  }
  const fd = g.value.openDeviceFd(name, options.vfToken);
  made.defer(() => libc.close(fd, name));
  checkIovaBase(ctx.value); // after the open: a compat IOAS has the device's ranges only once it is attached
  const iommu = path === "compat" ? "iommufd" : path;
  const groupType = options.groupType;
  made.move();
  const device = new Device({ fd, name, iommu, mapper: ctx.value.mapper, groupType, after: [g, ctx] });
  rememberGroup(device, g.value); // a hot reset passes the group's fd
  return device;
}

/**
 * When `error` (or its cause) is the kernel's EBUSY/EINVAL and a process holds the device's group node or (another
 * process) its cdev: a `DeviceBusyError` naming those processes; else `null`. `holdingCdev`: this process has just
 * opened the cdev itself (so its own fd does not count).
 */
function busyBecauseHeld(name: string, cdevPath: string, error: unknown, holdingCdev: boolean): DeviceBusyError | null {
  const sys = error instanceof SystemError ? error : (error as { cause?: unknown })?.cause;
  if (!(sys instanceof SystemError) || (sys.code !== "EBUSY" && sys.code !== "EINVAL")) return null;
  const group = readLinkName(`/sys/class/vfio-dev/${basename(cdevPath)}/device/iommu_group`);
  const searches: [string, number | undefined][] = [[cdevPath, holdingCdev ? libc.getpid() : undefined]];
  if (group !== null) searches.push([`/dev/vfio/${group}`, undefined]);
  for (const [node, exceptPid] of searches) {
    const holders = nodeHolders(node, { exceptPid });
    if (holders.length) return new DeviceBusyError(node, name, holders, { cause: error });
  }
  return null;
}

/** Opens the device cdev at `cdevPath`, binds it to the shared iommufd and attaches it to the shared IOAS. */
export function openThroughCdev(name: string, cdevPath: string, options: CdevPathOptions = {}): Device {
  using made = new DisposableStack(); // as in openThroughGroup
  const base = options.iovaBase ?? environmentIovaBase();
  const ctx = made.use(
    options.space ? options.space.lease("iommufd") : acquire("iommufd", () => iommufdContext(base), base),
  );
  let fd: number;
  try {
    fd = libc.open(cdevPath, O_RDWR | O_CLOEXEC, 0, "vfio-cdev");
  } catch (e) {
    if (!(e instanceof SystemError && e.code === "EBUSY")) throw e;
    throw busyBecauseHeld(name, cdevPath, e, false) ?? new DeviceBusyError(cdevPath, name, [], { cause: e });
  }
  made.defer(() => libc.close(fd, cdevPath));
  try {
    bindIommufd(fd, ctx.value.iommufd!, name);
  } catch (e) {
    // A device open elsewhere: through its group the bind fails with EBUSY, through its cdev with EINVAL.
    throw busyBecauseHeld(name, cdevPath, e, true) ?? e;
  }
  attachIoas(fd, ctx.value.ioas!, name);
  checkIovaBase(ctx.value);
  const groupType = options.groupType;
  made.move();
  return new Device({ fd, name, iommu: "iommufd", mapper: ctx.value.mapper, groupType, after: [ctx] });
}
