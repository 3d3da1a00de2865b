/**
 * What every process of the system holds, read once from procfs: the mounts of **every** mount namespace
 * (`/proc/PID/mountinfo`, one reader per namespace from `/proc/PID/ns/mnt`), swap areas, and the device nodes
 * open in any process (`/proc/PID/fd`). Device nodes are identified by a key: `b:MAJ:MIN`/`c:MAJ:MIN` from the
 * node's device number (mountinfo's third field for mounts, `stat` of the fd for openers), and `n:PATH` from
 * its path under `/dev` after resolving symlinks (`/dev/disk/by-uuid/…` → `n:nvme0n1p1`), so that a source
 * written through a symlink, or a file system whose device number is anonymous (btrfs), still matches.
 *
 * ```ts
 * import { SystemScan } from "@vfio-ts/vfio/sysfs";
 * const scan = new SystemScan();
 * for (const m of scan.mounts) console.log(m.mountPoint, m.keys);
 * ```
 * @module
 */

import { readdirSync, readFileSync, readlinkSync, realpathSync, statSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { hostPath, type SysfsOptions } from "./attr.ts";

/** A process, for messages. */
export interface ProcessRef {
  /** Its id. */
  readonly pid: number;
  /** Its name (`/proc/PID/comm`), `?` when it exited meanwhile. */
  readonly command: string;
}

/** One mount of one mount namespace. */
export interface MountEntry {
  /** Where it is mounted, as seen from the caller's root. */
  readonly mountPoint: string;
  /** The mount source as the kernel shows it (`/dev/nvme0n1p1`, `/dev/disk/by-uuid/…`). */
  readonly source: string;
  /** The file system type. */
  readonly fsType: string;
  /** Device keys of the source: `b:` + mountinfo's major:minor, and the resolved source's keys. */
  readonly keys: readonly string[];
  /** The mount is the root (`/`) of its namespace, or of a process's chroot in it. */
  readonly isRoot: boolean;
  /** A process of that namespace. */
  readonly process: ProcessRef;
  /** The namespace is not the caller's own. */
  readonly otherNamespace: boolean;
}

/** One open device node. */
export interface OpenNode {
  /** The path the process opened (as its `fd` link shows it). */
  readonly path: string;
  /** The process. */
  readonly process: ProcessRef;
}

/**
 * Reads a whole file under the options' root; `""` when it is missing or unreadable (a process that exited, a
 * kernel without the file).
 *
 * ```ts
 * import { readTextFile } from "./proc_scan.ts";
 * console.log(readTextFile("/proc/swaps").split("\n").length);
 * ```
 */
export function readTextFile(path: string, options: SysfsOptions = {}): string {
  return quietly(() => readFileSync(hostPath(options, path), "utf8"), "");
}

/**
 * `read()`'s value, or `fallback` when it throws: for procfs and sysfs entries that vanish while they are read
 * (an exiting process, an unplugged device) or that the caller may not read.
 *
 * ```ts
 * import { quietly } from "./proc_scan.ts";
 * import { readdirSync } from "node:fs";
 * const fds = quietly(() => readdirSync("/proc/1/fd"), []);
 * ```
 */
export function quietly<T>(read: () => T, fallback: T): T {
  try {
    return read();
  } catch {
    return fallback;
  }
}

const list = (dir: string): string[] => quietly(() => readdirSync(dir), []);
const link = (path: string): string | null => quietly(() => readlinkSync(path), null);

/** One open file of one process: its `/proc/PID/fd/N` entry and the text of that link. */
export interface OpenFd {
  /** The process. */
  readonly pid: number;
  /** The fd's entry, `/proc/PID/fd/N` (`stat` it to reach the open file itself). */
  readonly fdPath: string;
  /** Where the link points (`/dev/vfio/3`, `socket:[123]` …). */
  readonly target: string;
}

/**
 * The ids of the processes under `proc` (the `/proc` directory), ascending.
 *
 * ```ts
 * import { processIds } from "./proc_scan.ts";
 * console.log(processIds("/proc")[0]); // 1
 * ```
 */
export function processIds(proc: string): number[] {
  return list(proc).filter((n) => /^\d+$/.test(n)).map(Number).sort((a, b) => a - b);
}

/** A process's name from `PROC/PID/comm`, or `"?"` when it exited or may not be read. */
export function processName(proc: string, pid: number): string {
  return quietly(() => readFileSync(join(proc, String(pid), "comm"), "utf8").trim(), "") || "?";
}

/**
 * The one `/proc/PID/fd` scanner: every open fd of every process (of `pids`, default all, ascending), with its
 * link. Processes that exit meanwhile, or that this one may not inspect, are passed over.
 *
 * ```ts
 * import { openFds } from "./proc_scan.ts";
 * for (const fd of openFds("/proc")) if (fd.target.startsWith("/dev/vfio/")) console.log(fd.pid, fd.target);
 * ```
 */
export function* openFds(proc: string, pids: readonly number[] = processIds(proc)): Generator<OpenFd> {
  for (const pid of pids) {
    const dir = join(proc, String(pid), "fd");
    for (const fd of list(dir)) {
      const fdPath = join(dir, fd);
      const target = link(fdPath);
      if (target !== null) yield { pid, fdPath, target };
    }
  }
}

/** Undoes the octal escapes of mountinfo and /proc/swaps (`\040` is a space). */
export function unescapeProc(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** `MAJ:MIN` of a `stat` device number (glibc's `major()`/`minor()` encoding). */
function devPair(rdev: number): string {
  const d = BigInt(rdev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/** The `b:`/`c:` key of a file when it is a block or char device node. */
function statKey(path: string): string[] {
  try {
    const st = statSync(path);
    if (st.isBlockDevice()) return [`b:${devPair(st.rdev)}`];
    if (st.isCharacterDevice()) return [`c:${devPair(st.rdev)}`];
  } catch {
    // gone, or not ours to look at
  }
  return [];
}

/**
 * The keys of a device path in the caller's namespace: its symlinks resolved (under the options' root), then
 * its device number and its path below `/dev`. `/dev/disk/by-uuid/…` of a partition gives
 * `["b:259:1", "n:nvme0n1p1"]`.
 *
 * ```ts
 * import { nodeKeys } from "./proc_scan.ts";
 * console.log(nodeKeys("/dev/disk/by-label/data")); // ["b:259:1", "n:nvme0n1p1"]
 * ```
 */
export function nodeKeys(path: string, options: SysfsOptions = {}): string[] {
  if (!path.startsWith("/")) return [];
  let resolved: string;
  try {
    resolved = realpathSync(hostPath(options, path));
  } catch {
    return [];
  }
  const keys = statKey(resolved);
  const dev = hostPath(options, "/dev");
  let devReal = dev;
  try {
    devReal = realpathSync(dev);
  } catch {
    // no /dev: names cannot match
  }
  if (resolved.startsWith(`${devReal}/`)) keys.push(`n:${resolved.slice(devReal.length + 1)}`);
  return keys;
}

/** Parses one namespace's mountinfo text. */
function parseMountinfo(text: string): { devNumber: string; mountPoint: string; fsType: string; source: string }[] {
  return text.split("\n").flatMap((line) => {
    const [left, right] = line.split(" - ");
    if (right === undefined) return [];
    const l = left.split(" ");
    const r = right.split(" ");
    if (l.length < 5 || r.length < 2) return [];
    return [{ devNumber: l[2], mountPoint: unescapeProc(l[4]), fsType: r[0], source: unescapeProc(r[1]) }];
  });
}

/**
 * A snapshot of what the processes of the system hold, each part read on first use and then kept (so that
 * checking many devices reads `/proc` once).
 *
 * ```ts
 * import { SystemScan } from "@vfio-ts/vfio/sysfs";
 * const scan = new SystemScan();
 * console.log(scan.openers.get("b:259:0")?.map((o) => `${o.process.pid} (${o.process.command})`));
 * ```
 */
export class SystemScan {
  readonly #options: SysfsOptions;
  readonly #proc: string;
  #pids?: number[];
  #mounts?: MountEntry[];
  #swaps?: { path: string; keys: string[] }[];
  #openers?: Map<string, OpenNode[]>;
  #commands = new Map<number, string>();
  #cache = new Map<string, unknown>();

  /** A scan of the system under `options.root` (default `/`). */
  constructor(options: SysfsOptions = {}) {
    this.#options = options;
    this.#proc = hostPath(options, "/proc");
  }

  /** A value computed once per scan (e.g. the network state), shared by every device checked with it. */
  cached<T>(key: string, make: () => T): T {
    if (!this.#cache.has(key)) this.#cache.set(key, make());
    return this.#cache.get(key) as T;
  }

  /** The options this scan reads under. */
  get options(): SysfsOptions {
    return this.#options;
  }

  /** Every process id, ascending. */
  get pids(): readonly number[] {
    this.#pids ??= processIds(this.#proc);
    return this.#pids;
  }

  /** A process's reference for messages. */
  process(pid: number): ProcessRef {
    let command = this.#commands.get(pid);
    if (command === undefined) {
      command = readTextFile(`/proc/${pid}/comm`, this.#options).trim() || "?";
      this.#commands.set(pid, command);
    }
    return { pid, command };
  }

  /** The mounts of every mount namespace (each namespace read once, through its lowest pid). */
  get mounts(): readonly MountEntry[] {
    if (this.#mounts !== undefined) return this.#mounts;
    const own = link(join(this.#proc, "self", "ns", "mnt"));
    const seen = new Set<string>();
    const out: MountEntry[] = [];
    for (const pid of this.pids) {
      const ns = link(join(this.#proc, String(pid), "ns", "mnt")) ?? `pid ${pid}`;
      if (seen.has(ns)) continue;
      seen.add(ns);
      const text = readTextFile(`/proc/${pid}/mountinfo`, this.#options);
      if (text === "") continue;
      const root = link(join(this.#proc, String(pid), "root")) ?? "/";
      const ref = this.process(pid);
      for (const m of parseMountinfo(text)) {
        out.push({
          mountPoint: m.mountPoint,
          source: m.source,
          fsType: m.fsType,
          keys: [`b:${m.devNumber}`, ...(m.source.startsWith("/dev/") ? nodeKeys(m.source, this.#options) : [])],
          isRoot: m.mountPoint === "/" || m.mountPoint === root,
          process: ref,
          otherNamespace: own !== null && ns !== own,
        });
      }
    }
    this.#mounts = out;
    return out;
  }

  /** The swap areas of `/proc/swaps`, with their keys. */
  get swaps(): readonly { path: string; keys: string[] }[] {
    this.#swaps ??= readTextFile("/proc/swaps", this.#options).split("\n").slice(1).flatMap((line) => {
      const file = line.split(/\s+/)[0];
      if (!file) return [];
      const path = unescapeProc(file);
      return [{ path, keys: nodeKeys(path, this.#options) }];
    });
    return this.#swaps;
  }

  /**
   * Open device nodes by key. Only fds whose link reads `…/dev/…` are looked at (no `stat` of arbitrary files,
   * which could hang on a stuck network or FUSE mount; a process of another mount namespace shows its nodes
   * as paths from that namespace's root, e.g. `/newroot/dev/nvme0n1`). On the real `/proc` the fd itself is `stat`ed (the
   * kernel follows it to the very node, whatever mount namespace opened it); under a fake root the link's text
   * is resolved there instead.
   */
  get openers(): ReadonlyMap<string, readonly OpenNode[]> {
    if (this.#openers !== undefined) return this.#openers;
    const out = new Map<string, OpenNode[]>();
    const fakeRoot = hostPath(this.#options, "/") !== "/";
    for (const { pid, fdPath, target } of openFds(this.#proc, this.pids)) {
      // another mount namespace's /dev reads as a path from that namespace's root (`/newroot/dev/nvme0n1`)
      if (pid === process.pid || !/^\/(.*\/)?dev\//.test(target)) continue;
      const keys = fakeRoot ? nodeKeys(target, this.#options) : statKey(fdPath);
      if (keys.length === 0 && target.startsWith("/dev/")) keys.push(`n:${target.slice(5)}`);
      for (const key of new Set(keys)) {
        const users = out.get(key) ?? [];
        if (!users.some((u) => u.process.pid === pid)) users.push({ path: target, process: this.process(pid) });
        out.set(key, users);
      }
    }
    this.#openers = out;
    return out;
  }
}
