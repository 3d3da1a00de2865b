/**
 * The one error hierarchy of vfio-ts.
 *
 * Every failure the library reports is a {@linkcode VfioError}; failed system calls are
 * {@linkcode SystemError}s made in exactly one place ({@linkcode throwErrno}), which also attaches a
 * remedy: what to do next, in words a user can act on.
 *
 * ```ts
 * import { SystemError, VfioError } from "@vfio-ts/vfio";
 * try {
 *   // ... open a device ...
 * } catch (e) {
 *   if (e instanceof SystemError && e.code === "EPERM") console.error(e.remedy);
 *   else if (e instanceof VfioError) console.error(e.message);
 * }
 * ```
 * @module
 */
import { constants } from "node:os";
import * as util from "node:util";

/** Options shared by every vfio-ts error. */
export interface VfioErrorOptions {
  /** What the user can do about it. */
  remedy?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * Base class of every error vfio-ts throws.
 *
 * ```ts
 * import { VfioError } from "@vfio-ts/vfio";
 * const e = new VfioError("no such BAR", { remedy: "use one of BAR0, BAR2" });
 * console.log(e.message); // "no such BAR (use one of BAR0, BAR2)"
 * ```
 */
export class VfioError extends Error {
  /** The error class's name, `"VfioError"`. */
  override name = "VfioError";
  /** What the user can do about it, when known. */
  readonly remedy?: string;

  /** Builds an error; the remedy, if given, is appended to the message in parentheses. */
  constructor(message: string, options: VfioErrorOptions = {}) {
    super(options.remedy ? `${message} (${options.remedy})` : message, { cause: options.cause });
    this.remedy = options.remedy;
  }
}

/** errno numbers by name, the runtime's own table (`node:os` `constants.errno`; Linux numbers). */
export const ERRNO: Readonly<typeof constants.errno> = constants.errno;

/** A symbolic errno name such as `"EPERM"`. */
export type ErrnoName = keyof typeof constants.errno;

/**
 * Returns the symbolic name of an errno number (`1` → `"EPERM"`), or `"E<n>"` when unknown; the names are the
 * runtime's (`node:util` `getSystemErrorName`, the same on Deno and Bun).
 *
 * ```ts
 * import { errnoName } from "@vfio-ts/vfio";
 * console.log(errnoName(16)); // "EBUSY"
 * ```
 */
export function errnoName(errno: number): string {
  const name = errno > 0 ? util.getSystemErrorName(-errno) : undefined;
  return name?.startsWith("E") ? name : `E${errno}`;
}

/** `node:util`'s getSystemErrorMessage: in Deno 2.9 and Bun 1.4, not yet in the `@types/node` the checker reads. */
const getSystemErrorMessage = (util as unknown as { getSystemErrorMessage(n: number): string | undefined })
  .getSystemErrorMessage;

/** The runtime's message for an errno (`node:util` `getSystemErrorMessage`), or `"failed"` when unknown. */
function errnoMessage(errno: number): string {
  const text = errno > 0 ? getSystemErrorMessage(-errno) : undefined;
  return text && !text.startsWith("Unknown system error") ? text : "failed";
}

/**
 * Where a failed system call was aimed, for the message (`target`, the path, ioctl name or resource a user
 * recognises) and for the remedy (`kind`, what sort of thing it is: the caller knows, nothing reads it from the text).
 *
 * ```ts
 * import { SystemError } from "@vfio-ts/vfio";
 * const e = new SystemError("open", 2, { target: "/dev/vfio/3", kind: "vfio-group" });
 * console.log(e.remedy); // "is the device bound to vfio-pci? see `vfio bind <address>`"
 * ```
 */
export interface SyscallTarget {
  /** A path (`/dev/vfio/3`), an ioctl name (`VFIO_GROUP_SET_CONTAINER`) or a resource description. */
  target?: string;
  /** What the target is, as far as the remedy depends on it (default `"other"`). */
  kind?: TargetKind;
}

/** What a libc call takes as its target: the text alone (of kind `"other"`), or a {@linkcode SyscallTarget}. */
export type CallTarget = string | SyscallTarget;

/** A {@linkcode SyscallTarget}, and a remedy that overrides the generic one. */
export interface SyscallContext extends SyscallTarget {
  /** A remedy that overrides the generic one for this errno. */
  remedy?: string;
}

/**
 * A failed system call: carries the call, the errno (number and name), the target and a remedy.
 *
 * ```ts
 * import { SystemError } from "@vfio-ts/vfio";
 * const e = new SystemError("open", 13, { target: "/dev/vfio/7" });
 * console.log(e.code, e.message); // EACCES "open /dev/vfio/7: permission denied [EACCES] (...)"
 * ```
 */
export class SystemError extends VfioError {
  /** The error class's name, `"SystemError"`. */
  override name = "SystemError";
  /** The libc function that failed (`open`, `ioctl`, `mmap` …). */
  readonly syscall: string;
  /** The raw errno value. */
  readonly errno: number;
  /** The errno name (`EPERM`, `EBUSY` …). */
  readonly code: string;
  /** The path, ioctl name or resource the call was aimed at. */
  readonly target?: string;
  /** What sort of thing the target is (the caller's word; `"other"` when it gave none). */
  readonly targetKind: TargetKind;

  /** Builds the error; the remedy defaults to {@linkcode remedyFor} for the context's `kind`. */
  constructor(syscall: string, errno: number, context: SyscallContext = {}) {
    const code = errnoName(errno);
    const what = context.target ? `${syscall} ${context.target}` : syscall;
    super(`${what}: ${errnoMessage(errno)} [${code}]`, {
      remedy: context.remedy ?? remedyFor(syscall, code, context.kind),
    });
    this.syscall = syscall;
    this.errno = errno;
    this.code = code;
    this.target = context.target;
    this.targetKind = context.kind ?? "other";
  }
}

/**
 * A DMA map the kernel refused (`VFIO_IOMMU_MAP_DMA`, `IOMMU_IOAS_MAP`): a {@linkcode SystemError} (same `code`
 * and `errno`) whose target names the mapping and whose remedy is the one for that refusal.
 *
 * ```ts
 * import { DmaMapError } from "@vfio-ts/vfio";
 * const e = new DmaMapError("ioctl", 28, { target: "VFIO_IOMMU_MAP_DMA IOVA 0x10000 (+0x1000)", remedy: "map less" });
 * console.log(e.code, e instanceof DmaMapError); // ENOSPC true
 * ```
 */
export class DmaMapError extends SystemError {
  /** The error class's name, `"DmaMapError"`. */
  override name = "DmaMapError";
}

/**
 * What a failed call was aimed at, as far as the remedy depends on it (the caller says so in
 * {@linkcode SyscallTarget}`.kind`; nothing is read from the target's text): a VFIO node (group, no-IOMMU group, device
 * cdev, container), `/dev/iommu`, a VFIO or iommufd ioctl (device ioctls apart: a cdev answers them only once bound),
 * or anything else.
 */
export type TargetKind =
  | "vfio-group"
  | "noiommu-group"
  | "vfio-cdev"
  | "vfio-container"
  | "iommufd"
  | "vfio-ioctl"
  | "vfio-device-ioctl"
  | "iommufd-ioctl"
  | "other";

/** The kinds that are VFIO or iommufd objects (an EBUSY there means another user, ENOMEM the locked-memory limit). */
const VFIO_KINDS: ReadonlySet<TargetKind> = new Set<TargetKind>([
  "vfio-group",
  "noiommu-group",
  "vfio-cdev",
  "vfio-container",
  "iommufd",
  "vfio-ioctl",
  "vfio-device-ioctl",
  "iommufd-ioctl",
]);

/**
 * A generic remedy for a failed call, by errno and the kind of its target; specific layers pass their own remedy
 * in the context.
 *
 * ```ts
 * import { remedyFor } from "@vfio-ts/vfio";
 * console.log(remedyFor("open", "EACCES", "vfio-group"));
 * ```
 */
export function remedyFor(syscall: string, code: string, kind: TargetKind = "other"): string | undefined {
  const vfio = VFIO_KINDS.has(kind);
  switch (code) {
    case "EPERM":
    case "EACCES":
      if (kind === "noiommu-group") return "no-IOMMU groups need root or CAP_SYS_RAWIO";
      if (vfio) {
        return "run as root, or give your user the device node (chown/udev rule on /dev/vfio/N) and a large enough RLIMIT_MEMLOCK";
      }
      return "run as root or grant the needed permission";
    case "ENOENT":
      if (kind === "vfio-group" || kind === "noiommu-group" || kind === "vfio-cdev" || kind === "vfio-container") {
        return "is the device bound to vfio-pci? see `vfio bind <address>`";
      }
      if (kind === "iommufd") return "the kernel has no iommufd (CONFIG_IOMMUFD); use the legacy group path";
      return undefined;
    case "EBUSY":
      if (vfio) return "another process (or this one) already has it open; close the other user first";
      return "the resource is in use";
    case "ENOMEM":
      if (syscall === "mmap") return "for hugepages, reserve some first: echo 64 > /proc/sys/vm/nr_hugepages";
      if (vfio) return "RLIMIT_MEMLOCK is too low for this DMA mapping: raise it (ulimit -l unlimited) or run as root";
      return undefined;
    case "EMFILE":
      return "too many open files: close unused devices or raise the limit (ulimit -n)";
    case "EINVAL":
      if (kind === "vfio-device-ioctl") {
        return "check the argument; a device cdev (/dev/vfio/devices/vfioN) answers nothing before it is bound to " +
          "an iommufd (VFIO_DEVICE_BIND_IOMMUFD; openDevice does that for you)";
      }
      return undefined;
    case "ENOTTY":
      return "this file descriptor does not understand that ioctl (wrong kind of fd, or the kernel lacks the feature)";
    default:
      return undefined;
  }
}

/**
 * The single place that turns a `-1` + errno into an exception. Call it immediately after the failing call,
 * with the errno read before anything else runs. `context` is the call's target (text, or text and kind) or the
 * whole {@linkcode SyscallContext}.
 *
 * ```ts
 * import { throwErrno } from "@vfio-ts/vfio";
 * try { throwErrno("close", 9, "fd 42"); } catch (e) { console.log((e as Error).message); }
 * ```
 */
export function throwErrno(syscall: string, errno: number, context?: CallTarget | SyscallContext): never {
  throw new SystemError(syscall, errno, typeof context === "string" ? { target: context } : context);
}

/**
 * A PCI address that does not parse, or names no device on this machine.
 *
 * ```ts
 * import { InvalidAddressError } from "@vfio-ts/vfio";
 * throw new InvalidAddressError("0000:zz:00.0", "bus must be two hex digits");
 * ```
 */
export class InvalidAddressError extends VfioError {
  /** The error class's name, `"InvalidAddressError"`. */
  override name = "InvalidAddressError";
  /** The text that was given. */
  readonly address: string;
  /** Builds the error from the bad input and what is wrong with it. */
  constructor(address: string, problem: string, options: VfioErrorOptions = {}) {
    super(`invalid PCI address "${address}": ${problem}`, {
      remedy: options.remedy ?? "write it as DDDD:BB:DD.F (e.g. 0000:00:03.0) or BB:DD.F; `vfio status` lists devices",
      cause: options.cause,
    });
    this.address = address;
  }
}

/**
 * The device exists but is not bound to vfio-pci (or has no IOMMU group at all).
 *
 * ```ts
 * import { NotBoundError } from "@vfio-ts/vfio";
 * throw new NotBoundError("0000:00:03.0", "e1000e");
 * ```
 */
export class NotBoundError extends VfioError {
  /** The error class's name, `"NotBoundError"`. */
  override name = "NotBoundError";
  /** The device's address. */
  readonly address: string;
  /** Its current driver, or `null` when none. */
  readonly driver: string | null;
  /** Builds the error for a device on `driver` (or none). */
  constructor(address: string, driver: string | null, options: VfioErrorOptions = {}) {
    super(`${address} is ${driver ? `bound to ${driver}` : "not bound to any driver"}, not to vfio-pci`, {
      remedy: options.remedy ?? `bind it first: vfio bind ${address} (or bindToVfio("${address}"))`,
      cause: options.cause,
    });
    this.address = address;
    this.driver = driver;
  }
}

/** One member of an IOMMU group, as reported in {@linkcode GroupNotViableError}. */
export interface GroupMember {
  /** PCI address. */
  address: string;
  /** Bound driver, or `null`. */
  driver: string | null;
}

/**
 * A group is usable only when every member is bound to vfio-pci (or to no driver, or is a bridge):
 * this error names the members that are not.
 *
 * ```ts
 * import { GroupNotViableError } from "@vfio-ts/vfio";
 * throw new GroupNotViableError(7, [{ address: "0000:01:00.1", driver: "snd_hda_intel" }]);
 * ```
 */
export class GroupNotViableError extends VfioError {
  /** The error class's name, `"GroupNotViableError"`. */
  override name = "GroupNotViableError";
  /** The IOMMU group number. */
  readonly group: number;
  /** The members that keep the group from being viable. */
  readonly blockers: readonly GroupMember[];
  /** Builds the error from the group number and the members on other drivers. */
  constructor(group: number, blockers: readonly GroupMember[]) {
    const list = blockers.map((m) => `${m.address} (${m.driver ?? "no driver"})`).join(", ");
    super(`IOMMU group ${group} is not viable: ${list || "a member"} is not bound to vfio-pci`, {
      remedy: blockers.length
        ? `bind every member to vfio-pci too: vfio bind ${blockers.map((m) => m.address).join(" ")}`
        : "bind every device of the group to vfio-pci",
    });
    this.group = group;
    this.blockers = blockers;
  }
}

/**
 * A PCI hot reset would also reset devices the caller does not own: their groups are not open in this process
 * (legacy groups), or they are not bound to the caller's iommufd (cdev), or they are on another driver.
 *
 * ```ts
 * import { HotResetBlockedError } from "@vfio-ts/vfio";
 * throw new HotResetBlockedError("0000:01:01.0", [{ address: "0000:01:02.0", reason: "group 7 is not open" }]);
 * ```
 */
export class HotResetBlockedError extends VfioError {
  /** The error class's name, `"HotResetBlockedError"`. */
  override name = "HotResetBlockedError";
  /** The device whose reset was asked for. */
  readonly device: string;
  /** The devices the caller must also own (open in this process) for the reset, and why each is not. */
  readonly devices: readonly { address: string; reason: string }[];
  /** Builds the error from the device and the devices in the way. */
  constructor(
    device: string,
    devices: readonly { address: string; reason: string }[],
    options: { cause?: unknown } = {},
  ) {
    const list = devices.map((d) => `${d.address} (${d.reason})`).join(", ");
    super(`a hot reset of ${device} also resets ${list || "devices this process does not own"}`, {
      remedy: `open ${devices.map((d) => d.address).join(" ") || "every affected device"} in this process too ` +
        "(bound to vfio-pci, on the same IOMMU path), then reset",
      cause: options.cause,
    });
    this.device = device;
    this.devices = devices;
  }
}

/**
 * The device is in a no-IOMMU group and the caller did not opt in, or the kernel cannot do no-IOMMU mode.
 *
 * ```ts
 * import { NoiommuError } from "@vfio-ts/vfio";
 * throw new NoiommuError("0000:00:03.0 is in no-IOMMU group 0", "pass { noiommu: true } to accept the risk");
 * ```
 */
export class NoiommuError extends VfioError {
  /** The error class's name, `"NoiommuError"`. */
  override name = "NoiommuError";
  /** Builds the error with a statement of the problem and what to do. */
  constructor(message: string, remedy: string) {
    super(message, { remedy });
  }
}

/**
 * Access outside a region or buffer, or at a misaligned offset.
 *
 * ```ts
 * import { OutOfRangeError } from "@vfio-ts/vfio";
 * throw new OutOfRangeError("BAR0 read32 at 0x100000: beyond the region's 0x100000 bytes");
 * ```
 */
export class OutOfRangeError extends VfioError {
  /** The error class's name, `"OutOfRangeError"`. */
  override name = "OutOfRangeError";
}

/**
 * The device or kernel does not offer the feature asked for (no reset method, no such IRQ index, no MSI-X …).
 *
 * ```ts
 * import { UnsupportedError } from "@vfio-ts/vfio";
 * throw new UnsupportedError("0000:00:03.0 has no reset method", { remedy: "power-cycle or hot-reset the slot" });
 * ```
 */
export class UnsupportedError extends VfioError {
  /** The error class's name, `"UnsupportedError"`. */
  override name = "UnsupportedError";
}

/**
 * A resource was used after `close()`.
 *
 * ```ts
 * import { ClosedError } from "@vfio-ts/vfio";
 * throw new ClosedError("Region BAR0 of 0000:00:03.0");
 * ```
 */
export class ClosedError extends VfioError {
  /** The error class's name, `"ClosedError"`. */
  override name = "ClosedError";
  /** Builds the error naming the closed resource. */
  constructor(what: string) {
    super(`${what} is closed`, { remedy: "keep the resource open while you use it; open it again if needed" });
  }
}

/** A process that has a device node open, as named in a {@linkcode DeviceBusyError}. */
export interface NodeHolder {
  /** Its process id. */
  pid: number;
  /** Its command name (`/proc/<pid>/comm`), or `"?"` when it could not be read. */
  name: string;
}

/**
 * A VFIO group or device is already open in another process (the kernel's EBUSY, or EINVAL on a second cdev
 * bind): names the processes that hold its node, found in `/proc/<pid>/fd`.
 *
 * ```ts
 * import { DeviceBusyError } from "@vfio-ts/vfio";
 * const e = new DeviceBusyError("/dev/vfio/3", "0000:00:03.0", [{ pid: 4242, name: "deno" }]);
 * console.log(e.holders[0].pid); // 4242
 * ```
 */
export class DeviceBusyError extends VfioError {
  /** The error class's name, `"DeviceBusyError"`. */
  override name = "DeviceBusyError";
  /** The node that is busy (`/dev/vfio/3`, `/dev/vfio/devices/vfio0`). */
  readonly node: string;
  /** The processes that have it open (empty when none could be found: another user's, or gone meanwhile). */
  readonly holders: readonly NodeHolder[];
  /** Builds the error from the node, the device's name and the holders found. */
  constructor(node: string, device: string, holders: readonly NodeHolder[], options: VfioErrorOptions = {}) {
    const who = holders.length
      ? `by ${holders.map((h) => `pid ${h.pid} (${h.name})`).join(", ")}`
      : "by another process (not found in /proc: another user's, or it just exited)";
    super(`${device} is already open: ${node} is held ${who}`, {
      remedy: options.remedy ??
        (holders.length
          ? `a VFIO group or device is opened by one process at a time: close it there, or stop pid ${
            holders.map((h) => h.pid).join(", ")
          }`
          : "a VFIO group or device is opened by one process at a time: close the other user first"),
      cause: options.cause,
    });
    this.node = node;
    this.holders = holders;
  }
}

/**
 * A driver or module name (from the command line, a driver record or sysfs) that is not a plain kernel name, or
 * names no driver this kernel has: it is never joined into a path or handed to `modprobe`.
 *
 * ```ts
 * import { InvalidDriverError } from "@vfio-ts/vfio";
 * throw new InvalidDriverError("../../x", "only letters, digits, '_', '-' and '.' (not first) are allowed");
 * ```
 */
export class InvalidDriverError extends VfioError {
  /** The error class's name, `"InvalidDriverError"`. */
  override name = "InvalidDriverError";
  /** The name that was refused. */
  readonly driver: string;
  /** Builds the error from the refused name and what is wrong with it. */
  constructor(driver: string, problem: string, options: VfioErrorOptions = {}) {
    super(`invalid driver name ${JSON.stringify(driver)}: ${problem}`, {
      remedy: options.remedy ?? "give the name of a PCI driver as /sys/bus/pci/drivers lists it, e.g. e1000e",
      cause: options.cause,
    });
    this.driver = driver;
  }
}

/**
 * A problem with a driver record or the directory that holds them (`/run/vfio-ts`); see the two subclasses.
 *
 * ```ts
 * import { type DriverRecordError, RecordsDirError } from "@vfio-ts/vfio";
 * const e: DriverRecordError = new RecordsDirError("/run/vfio-ts", "/run is read-only [EROFS]");
 * console.log(e.path); // "/run/vfio-ts"
 * ```
 */
export class DriverRecordError extends VfioError {
  /** The error class's name, `"DriverRecordError"`. */
  override name = "DriverRecordError";
  /** The file or directory concerned. */
  readonly path: string;
  /** Builds the error for `path` with the full message. */
  constructor(path: string, message: string, options: VfioErrorOptions = {}) {
    super(message, options);
    this.path = path;
  }
}

/**
 * A driver record, or the directory that holds them, that root cannot trust: not owned by root, writable by group
 * or others, a symbolic link, not a regular file, or not a record vfio-ts wrote. Nothing in it is used.
 *
 * ```ts
 * import { UntrustedRecordError } from "@vfio-ts/vfio";
 * throw new UntrustedRecordError("/run/vfio-ts/0000:00:03.0.json", "owned by uid 1000, not root");
 * ```
 */
export class UntrustedRecordError extends DriverRecordError {
  /** The error class's name, `"UntrustedRecordError"`. */
  override name = "UntrustedRecordError";
  /** Builds the error from the path and what is wrong with it. */
  constructor(path: string, problem: string, options: VfioErrorOptions = {}) {
    const remedy = `look at who put it there; remove it (rm ${path}) and give the device its driver by hand or ` +
      "with `vfio restore <device> --driver NAME`";
    super(path, `refusing to trust ${path}: ${problem}`, { remedy: options.remedy ?? remedy, cause: options.cause });
  }
}

/**
 * The driver records directory (`/run/vfio-ts`) cannot be created or written: vfio-ts keeps records only where
 * only root can write, and does not fall back to a shared directory such as `/tmp`.
 *
 * ```ts
 * import { RecordsDirError } from "@vfio-ts/vfio";
 * throw new RecordsDirError("/run/vfio-ts", "/run is read-only [EROFS]");
 * ```
 */
export class RecordsDirError extends DriverRecordError {
  /** The error class's name, `"RecordsDirError"`. */
  override name = "RecordsDirError";
  /** Builds the error from the directory and what failed. */
  constructor(path: string, problem: string, options: VfioErrorOptions = {}) {
    const remedy = "run as root on a system whose /run is a writable tmpfs (mount -t tmpfs tmpfs /run)";
    super(path, `cannot keep driver records in ${path}: ${problem}`, { ...options, remedy: options.remedy ?? remedy });
  }
}

/**
 * Another process is binding, unbinding or restoring the same device and did not finish within the wait.
 *
 * ```ts
 * import { DeviceLockedError } from "@vfio-ts/vfio";
 * throw new DeviceLockedError("0000:00:03.0", 4242, "deno", 10_000);
 * ```
 */
export class DeviceLockedError extends VfioError {
  /** The error class's name, `"DeviceLockedError"`. */
  override name = "DeviceLockedError";
  /** The device's address. */
  readonly address: string;
  /** The process holding the device's lock, when known. */
  readonly holderPid: number | null;
  /** Builds the error naming the holder (pid and command name, when known) and how long this process waited. */
  constructor(address: string, holderPid: number | null, command: string, waitedMs: number) {
    const who = holderPid === null ? "another process" : `process ${holderPid}${command ? ` (${command})` : ""}`;
    super(`${address} is locked by ${who}, which is changing its driver; gave up after ${waitedMs} ms`, {
      remedy: "wait for it to finish and try again, or stop it; `vfio status` shows the device's state",
    });
    this.address = address;
    this.holderPid = holderPid;
  }
}

/**
 * A size beyond what the runtime (or the library) can handle, refused before anything was mapped or allocated:
 * e.g. a typed view longer than the runtime's largest `ArrayBuffer` (4 GiB on Bun).
 *
 * ```ts
 * import { SizeLimitError } from "@vfio-ts/vfio";
 * throw new SizeLimitError("a view of 5 GiB", 5 * 2 ** 30, 2 ** 32, { remedy: "take views of at most 4 GiB" });
 * ```
 */
export class SizeLimitError extends OutOfRangeError {
  /** The error class's name, `"SizeLimitError"`. */
  override name = "SizeLimitError";
  /** The size asked for, in bytes. */
  readonly sizeBytes: number;
  /** The largest size allowed, in bytes. */
  readonly limitBytes: number;
  /** Builds the error from what was asked for, its size and the limit. */
  constructor(what: string, sizeBytes: number, limitBytes: number, options: VfioErrorOptions = {}) {
    super(`${what}: ${sizeBytes} bytes is more than the limit of ${limitBytes} bytes`, options);
    this.sizeBytes = sizeBytes;
    this.limitBytes = limitBytes;
  }
}

/**
 * A kernel answer the library refuses to trust: a buffer size beyond a sane maximum, or a count or offset that
 * points outside the buffer the kernel filled.
 *
 * ```ts
 * import { MalformedReplyError } from "@vfio-ts/vfio";
 * throw new MalformedReplyError("VFIO_IOMMU_GET_INFO", "asks for a 4294967295-byte buffer");
 * ```
 */
export class MalformedReplyError extends VfioError {
  /** The error class's name, `"MalformedReplyError"`. */
  override name = "MalformedReplyError";
  /** The call (ioctl) whose answer was refused. */
  readonly call: string;
  /** Builds the error from the call and what is wrong with its answer. */
  constructor(call: string, problem: string, options: VfioErrorOptions = {}) {
    super(`${call}: the kernel's answer ${problem}`, {
      remedy: options.remedy ??
        "this kernel or device reports something vfio-ts cannot trust; report it with `uname -r`",
      cause: options.cause,
    });
    this.call = call;
  }
}

/** One use of a VF that keeps its PF's VFs from being destroyed, as named in a {@linkcode VfsInUseError}. */
export interface VfUser {
  /** The VF's address. */
  readonly address: string;
  /** One phrase for people: "pid 4242 (deno) holds /dev/vfio/12", "network interface eth3 is up". */
  readonly description: string;
  /** The process, when one is known. */
  readonly pid?: number;
  /** Its command name, when known. */
  readonly command?: string;
  /** A process holds the VF through VFIO (never overridden: removing the VF would block until it lets go). */
  readonly vfio: boolean;
}

/**
 * A PF's VFs cannot be destroyed or re-created: one of them is in use (held through VFIO, or used through its
 * kernel driver). Names the VFs and their holders.
 *
 * ```ts
 * import { VfsInUseError } from "@vfio-ts/vfio";
 * const e = new VfsInUseError("0000:00:07.0", [
 *   { address: "0000:00:17.0", description: "pid 4242 (deno) holds /dev/vfio/12", pid: 4242, vfio: true },
 * ]);
 * console.log(e.users[0].pid); // 4242
 * ```
 */
export class VfsInUseError extends VfioError {
  /** The error class's name, `"VfsInUseError"`. */
  override name = "VfsInUseError";
  /** The PF's address. */
  readonly address: string;
  /** What uses its VFs. */
  readonly users: readonly VfUser[];
  /** Builds the error from the PF's address and the uses found. */
  constructor(address: string, users: readonly VfUser[], options: VfioErrorOptions = {}) {
    const list = users.map((u) => `${u.address}: ${u.description}`).join("; ");
    const pids = [...new Set(users.flatMap((u) => (u.pid === undefined ? [] : [u.pid])))];
    super(`refusing to change the VFs of ${address}: ${list}`, {
      remedy: options.remedy ??
        (users.every((u) => u.vfio)
          ? `close the VFs in ${pids.length ? `pid ${pids.join(", ")}` : "the processes that hold them"} first`
          : "stop using the VFs first (or force it for kernel-driver uses; a VFIO user is never overridden)"),
      cause: options.cause,
    });
    this.address = address;
    this.users = users;
  }
}

/**
 * The kernel refused a VF token (EACCES or EINVAL from `VFIO_GROUP_GET_DEVICE_FD`): the VF's PF is owned by a
 * vfio-pci user that set a token and none or another was given, or a token was given for a device that takes none.
 *
 * ```ts
 * import { VfTokenError } from "@vfio-ts/vfio";
 * throw new VfTokenError("0000:00:17.0", "0000:00:07.0", "missing");
 * ```
 */
export class VfTokenError extends VfioError {
  /** The error class's name, `"VfTokenError"`. */
  override name = "VfTokenError";
  /** The device that was opened. */
  readonly address: string;
  /** Its PF (`null`: the device is not a VF). */
  readonly pf: string | null;
  /** `missing`: a token is needed; `wrong`: not the PF owner's; `unexpected`: this device takes no token. */
  readonly problem: "missing" | "wrong" | "unexpected";
  /** Builds the error from the device, its PF and what was wrong. */
  constructor(
    address: string,
    pf: string | null,
    problem: "missing" | "wrong" | "unexpected",
    options: VfioErrorOptions = {},
  ) {
    const owner = pf === null ? "" : ` (a VF of ${pf})`;
    const needs = pf === null
      ? `${address} needs a VF token: it is a PF whose VFs are open through vfio-pci with one`
      : `${address}${owner} needs a VF token: its PF is owned through vfio-pci by a process that set one`;
    const what = problem === "missing"
      ? needs
      : problem === "wrong"
      ? `${address}${owner}: the kernel refused the VF token given, which is not the one the PF's owner set`
      : `${address}${owner} takes no VF token: ${
        pf === null ? "it is neither a VF nor a PF on vfio-pci" : "its PF is not on vfio-pci"
      } (or it is not a member of the group)`;
    super(what, {
      remedy: options.remedy ??
        (problem === "unexpected"
          ? "open it without vfToken"
          : `pass the UUID the owner of ${pf ?? "the PF"} set (Device.setVfToken): openDevice("${address}", ` +
            `{ vfToken: "<uuid>" }) or --vf-token <uuid>`),
      cause: options.cause,
    });
    this.address = address;
    this.pf = pf;
    this.problem = problem;
  }
}
