/**
 * A VFIO group (`/dev/vfio/N`, or `/dev/vfio/noiommu-N` in no-IOMMU mode): the unit of isolation. A group is
 * usable once every member device is bound to vfio-pci (it is *viable*) and it is attached to a container;
 * then it hands out device fds.
 *
 * ```ts
 * import { Container } from "@vfio-ts/vfio/iommu";
 * import { Group } from "@vfio-ts/vfio/iommu";
 * using container = Container.open();
 * using group = Group.open(3);
 * group.assertViable();
 * group.setContainer(container);
 * container.setIommu();
 * const deviceFd = group.openDeviceFd("0000:00:03.0");
 * ```
 * @module
 */
import { existsSync, statSync } from "node:fs";
import { O_CLOEXEC, O_RDWR } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";
import {
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VfioGroupStatus,
} from "./abi/vfio.ts";
import {
  ClosedError,
  DeviceBusyError,
  GroupNotViableError,
  type NodeHolder,
  NoiommuError,
  SystemError,
  VfioError,
  VfTokenError,
} from "./errors.ts";
import { inspectable } from "./inspect.ts";
import { readLinkName } from "./sysfs/attr.ts";
import { groupViabilityBlockers } from "./sysfs/iommu_group.ts";
import { openFds, processName, quietly } from "./sysfs/proc_scan.ts";
import { deviceNameWithToken } from "./vf_token.ts";

/** Options of {@linkcode nodeHolders}. */
export interface NodeHoldersOptions {
  /** Where `/proc` is (tests: a fake tree; default `/proc`). */
  proc?: string;
  /** A process to leave out (e.g. this one, when it has just opened the node itself). */
  exceptPid?: number;
}

/**
 * The processes that have the device node `node` open: every `/proc/<pid>/fd/<n>` that links to that path or to
 * a node with the same device number. Processes this one may not inspect are skipped. Used to name who holds a busy
 * VFIO group or device.
 *
 * ```ts
 * import { nodeHolders } from "./group.ts";
 * for (const h of nodeHolders("/dev/vfio/3")) console.log(h.pid, h.name);
 * ```
 */
export function nodeHolders(node: string, options: NodeHoldersOptions = {}): NodeHolder[] {
  const proc = options.proc ?? "/proc";
  const st = quietly(() => statSync(node), null); // without a device number, compare by path only
  const rdev = st?.isCharacterDevice() ? st.rdev : null;
  const holding = new Set<number>();
  for (const { pid, fdPath, target } of openFds(proc)) {
    if (pid === options.exceptPid || holding.has(pid)) continue;
    const same = target === node ||
      (rdev !== null && target.startsWith("/dev/") && quietly(() => statSync(fdPath).rdev === rdev, false));
    if (same) holding.add(pid);
  }
  return [...holding].map((pid) => ({ pid, name: processName(proc, pid) }));
}

/** What `VFIO_GROUP_GET_STATUS` says. */
export interface GroupStatus {
  /** Every member is bound to vfio-pci or to no driver. */
  viable: boolean;
  /** The group is attached to a container. */
  containerSet: boolean;
}

/**
 * What a group can be attached to: a legacy container (`Container`) or, in the iommufd compat form, an
 * `Iommufd` (`/dev/iommu` standing in for `/dev/vfio/vfio`).
 */
export interface GroupContainer {
  /** The container's fd, passed to `VFIO_GROUP_SET_CONTAINER`. */
  readonly fd: number;
  /** Told when a group is attached (+1) or detached (-1). */
  attached(delta: 1 | -1): void;
}

/** Options of {@linkcode Group.open}. */
export interface GroupOpenOptions {
  /** Accept a no-IOMMU group (`/dev/vfio/noiommu-N`): DMA is unchecked and the kernel is tainted. */
  noiommu?: boolean;
  /** The directory of the group nodes (default `/dev/vfio`). */
  devDir?: string;
}

/**
 * An open VFIO group.
 *
 * ```ts
 * import { Group } from "@vfio-ts/vfio/iommu";
 * using group = Group.open(0, { noiommu: true });
 * console.log(group.path, group.status());
 * ```
 */
export class Group {
  #fd: number;
  readonly #number: number;
  readonly #path: string;
  #container: GroupContainer | null = null;

  private constructor(fd: number, number: number, path: string) {
    this.#fd = fd;
    this.#number = number;
    this.#path = path;
  }

  /** The path of group `n`'s node, and whether it is a no-IOMMU group; `null` when neither node exists. */
  static locate(n: number, devDir = "/dev/vfio"): { path: string; noiommu: boolean } | null {
    if (existsSync(`${devDir}/${n}`)) return { path: `${devDir}/${n}`, noiommu: false };
    if (existsSync(`${devDir}/noiommu-${n}`)) return { path: `${devDir}/noiommu-${n}`, noiommu: true };
    return null;
  }

  /**
   * Opens IOMMU group `n`. A no-IOMMU group needs `{ noiommu: true }`: without it this throws a `NoiommuError`
   * explaining the risk (never a silent fallback).
   */
  static open(n: number, options: GroupOpenOptions = {}): Group {
    if (!Number.isInteger(n) || n < 0) throw new VfioError(`invalid IOMMU group number ${n}`);
    const devDir = options.devDir ?? "/dev/vfio";
    const where = Group.locate(n, devDir);
    if (!where) {
      throw new VfioError(`IOMMU group ${n} has no VFIO node (${devDir}/${n} or ${devDir}/noiommu-${n})`, {
        remedy: "bind the group's devices to vfio-pci first (vfio bind <address>)",
      });
    }
    if (where.noiommu && !options.noiommu) {
      throw new NoiommuError(
        `IOMMU group ${n} is a no-IOMMU group (${where.path}): the device can DMA anywhere in memory, unchecked`,
        "opt in with { noiommu: true } (vfio --noiommu) if you accept that; the kernel is tainted",
      );
    }
    let fd: number;
    try {
      fd = libc.open(where.path, O_RDWR | O_CLOEXEC, 0, where.noiommu ? "noiommu-group" : "vfio-group");
    } catch (e) {
      if (e instanceof SystemError && e.code === "EBUSY") {
        throw new DeviceBusyError(where.path, `IOMMU group ${n}`, nodeHolders(where.path), { cause: e });
      }
      if (e instanceof SystemError && (e.code === "EPERM" || e.code === "EACCES") && where.noiommu) {
        throw new NoiommuError(`cannot open no-IOMMU group ${where.path} (${e.code})`, "needs root: CAP_SYS_RAWIO");
      }
      throw e;
    }
    return new Group(fd, n, where.path);
  }

  /** The group fd (throws `ClosedError` after close). */
  get fd(): number {
    if (this.#fd < 0) throw new ClosedError(`group ${this.#path}`);
    return this.#fd;
  }

  /** The IOMMU group number. */
  get number(): number {
    return this.#number;
  }

  /** The group node's path. */
  get path(): string {
    return this.#path;
  }

  /** True for a no-IOMMU group. */
  get noiommu(): boolean {
    return this.#path.includes("noiommu-");
  }

  /** The container this group is attached to, or `null`. */
  get container(): GroupContainer | null {
    return this.#container;
  }

  /** Reads the group's status. */
  status(): GroupStatus {
    const s = VfioGroupStatus.alloc();
    s.argsz = VfioGroupStatus.size;
    libc.ioctl(this.fd, VFIO_GROUP_GET_STATUS, s.bytes, { target: "VFIO_GROUP_GET_STATUS", kind: "vfio-ioctl" });
    return {
      viable: (s.flags & VFIO_GROUP_FLAGS_VIABLE) !== 0,
      containerSet: (s.flags & VFIO_GROUP_FLAGS_CONTAINER_SET) !== 0,
    };
  }

  /** Throws a `GroupNotViableError` naming every member on another driver when the group is not viable. */
  assertViable(): void {
    if (this.status().viable) return;
    throw new GroupNotViableError(this.#number, groupViabilityBlockers(this.#number));
  }

  /** Attaches the group to `container` (`VFIO_GROUP_SET_CONTAINER`): a `Container`, or an `Iommufd` (compat form). */
  setContainer(container: GroupContainer): void {
    if (this.#container === container) return;
    if (this.#container) throw new VfioError(`group ${this.#number} is already attached to a container`);
    this.assertViable();
    libc.ioctl(this.fd, VFIO_GROUP_SET_CONTAINER, new Int32Array([container.fd]), {
      target: "VFIO_GROUP_SET_CONTAINER",
      kind: "vfio-ioctl",
    });
    this.#container = container;
    container.attached(1);
  }

  /** Detaches the group from its container. */
  unsetContainer(): void {
    if (!this.#container) return;
    const c = this.#container;
    this.#container = null;
    c.attached(-1);
    libc.ioctl(this.fd, VFIO_GROUP_UNSET_CONTAINER, null, { target: "VFIO_GROUP_UNSET_CONTAINER", kind: "vfio-ioctl" });
  }

  /**
   * Gets a device fd for the member at `address` (`VFIO_GROUP_GET_DEVICE_FD`), passing `vfToken` (a UUID) as
   * `"<address> vf_token=<uuid>"` when given: a VF of a PF owned through vfio-pci needs it (see `vf_token.ts`).
   */
  openDeviceFd(address: string, vfToken?: string): number {
    if (!this.#container) {
      throw new VfioError(`group ${this.#number} has no container yet`, {
        remedy: "call group.setContainer(container) and container.setIommu() first",
      });
    }
    try {
      return libc.ioctl(
        this.fd,
        VFIO_GROUP_GET_DEVICE_FD,
        new TextEncoder().encode(deviceNameWithToken(address, vfToken) + "\0"),
        { target: "VFIO_GROUP_GET_DEVICE_FD", kind: "vfio-ioctl" },
      );
    } catch (e) {
      const token = vfTokenRefusal(address, vfToken, e);
      if (token) throw token;
      if (e instanceof SystemError && e.code === "EBUSY") {
        throw new VfioError(`${address} is already open`, { remedy: "close the other Device first", cause: e });
      }
      if (e instanceof SystemError && e.code === "EPERM" && !this.noiommu) {
        throw new VfioError(`${address}: the kernel refused the device fd (EPERM): no interrupt remapping`, {
          remedy: "enable interrupt remapping, or knowingly load vfio_iommu_type1 with allow_unsafe_interrupts=1",
          cause: e,
        });
      }
      if (e instanceof SystemError && e.code === "EINVAL") {
        throw new VfioError(`${address} is not a member of IOMMU group ${this.#number}, or the IOMMU is not set`, {
          remedy: "check the address (vfio groups) and call container.setIommu() before opening devices",
          cause: e,
        });
      }
      throw e;
    }
  }

  /** Detaches from the container and closes the group (idempotent). */
  close(): void {
    if (this.#fd < 0) return;
    try {
      this.unsetContainer();
    } catch { /* closing the fd detaches anyway */ }
    const fd = this.#fd;
    this.#fd = -1;
    libc.close(fd, this.#path);
  }

  /** Same as {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** What `console.log(group)` shows: number, node, kind, viability and container while open. */
  toJSON(): GroupSummary {
    const out: GroupSummary = { number: this.#number, path: this.#path, noiommu: this.noiommu, closed: this.#fd < 0 };
    if (this.#fd >= 0) {
      out.containerSet = this.#container !== null;
      try {
        out.viable = this.status().viable;
      } catch { /* printing never throws */ }
    }
    return out;
  }
}
inspectable(Group);

/** {@linkcode Group.toJSON}'s plain form of a group. */
export interface GroupSummary {
  /** The IOMMU group number. */
  number: number;
  /** Its node. */
  path: string;
  /** A no-IOMMU group. */
  noiommu: boolean;
  /** Whether this handle is closed. */
  closed: boolean;
  /** Attached to a container (open groups only). */
  containerSet?: boolean;
  /** `VFIO_GROUP_FLAGS_VIABLE` (open groups only). */
  viable?: boolean;
}

/** The kernel's answer to a VF token (EACCES: missing or wrong; EINVAL with a token: none expected) as an error. */
function vfTokenRefusal(address: string, vfToken: string | undefined, e: unknown): VfTokenError | null {
  if (!(e instanceof SystemError)) return null;
  if (e.code !== "EACCES" && !(e.code === "EINVAL" && vfToken !== undefined)) return null;
  const pf = readLinkName(`/sys/bus/pci/devices/${address}/physfn`);
  if (e.code === "EINVAL") return new VfTokenError(address, pf, "unexpected", { cause: e });
  return new VfTokenError(address, pf, vfToken === undefined ? "missing" : "wrong", { cause: e });
}
