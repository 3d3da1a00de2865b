/**
 * Whether the system is using a PCI device through its kernel driver, looking at the device's whole sysfs subtree
 * (interfaces and disks at any depth, NVMe multipath heads, stacked dm/md/LVM devices) and at the whole system
 * (mounts of every mount namespace, swap, device nodes open in any process, kernel consoles, the framebuffer
 * console, vsock). Taking such a device away from its driver cuts a live connection or yanks a file system, so
 * callers refuse unless told otherwise; a use marked {@linkcode DeviceUse.critical} (the default route, the root
 * file system) would cut the machine off or crash it.
 *
 * ```ts
 * import { deviceUsers } from "@vfio-ts/vfio/sysfs";
 * for (const u of deviceUsers("0000:00:05.0")) console.log(u.description); // "network interface ens5 is up"
 * ```
 * @module
 */

import { readdirSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { O_CLOEXEC, O_EXCL, O_NONBLOCK, O_RDONLY } from "../../ffi/constants.ts";
import { libc } from "../../ffi/libc.ts";
import { IFF_UP } from "../abi/if.ts";
import { SystemError } from "../errors.ts";
import type { PciAddress } from "../pci_address.ts";
import { hostPath, readAttr, readNumber, type SysfsOptions } from "./attr.ts";
import { deviceTree, holderKind, type TreeNode } from "./device_tree.ts";
import { readNetState } from "./net_use.ts";
import { nodeKeys, type ProcessRef, quietly, readTextFile, SystemScan } from "./proc_scan.ts";

/** What kind of use. */
export type DeviceUseKind =
  | "interface-up"
  | "address"
  | "default-route"
  | "mounted"
  | "swap"
  | "held"
  | "claimed"
  | "open"
  | "console"
  | "framebuffer-console"
  | "vsock";

/** One way the system is using a device. */
export interface DeviceUse {
  /** What kind of use. */
  readonly kind: DeviceUseKind;
  /** The interface, block device or node name (`eth0`, `nvme0n1p1`, `card0`). */
  readonly name: string;
  /** One phrase for people: "network interface ens5 is up", "nvme0n1p1 is mounted on /data". */
  readonly description: string;
  /** Taking the device away would cut the machine off or crash it: the default route, the root file system. */
  readonly critical: boolean;
  /** The process holding it (an opener, or a process of the mount namespace that mounts it). */
  readonly process?: ProcessRef;
}

export { type MountEntry, type OpenNode, type ProcessRef, SystemScan } from "./proc_scan.ts";

const list = (dir: string): string[] => quietly(() => readdirSync(dir).sort(), []);

function label(n: TreeNode): string {
  return n.via.length === 0 ? n.name : `${n.name} (on ${n.via.join(" > ")})`;
}

function nodeKeySet(n: TreeNode): string[] {
  const keys: string[] = [];
  if (n.devNumber !== null) keys.push(`${n.subsystem === "block" ? "b" : "c"}:${n.devNumber}`);
  if (n.devName !== null) keys.push(`n:${n.devName}`);
  return keys;
}

/**
 * The network interfaces of a device, at any depth below it (`…/virtio2/net/eth0` as well as `…/net/ens5`).
 *
 * ```ts
 * import { networkInterfaces } from "@vfio-ts/vfio/sysfs";
 * console.log(networkInterfaces("0000:00:05.0")); // ["ens5"]
 * ```
 */
export function networkInterfaces(address: string | PciAddress, options: SysfsOptions = {}): string[] {
  return deviceTree(address, options).nodes.filter((n) => n.subsystem === "net").map((n) => n.name).sort();
}

/**
 * The block devices and partitions of a device, at any depth (an NVMe controller's namespaces, including the
 * multipath heads of its NVMe subsystem, a virtio-blk disk, a SATA controller's disks), and the devices stacked
 * on them (dm, md).
 *
 * ```ts
 * import { blockDevices } from "@vfio-ts/vfio/sysfs";
 * console.log(blockDevices("0000:00:04.0")); // ["nvme0n1", "nvme0n1p1"]
 * ```
 */
export function blockDevices(address: string | PciAddress, options: SysfsOptions = {}): string[] {
  return deviceTree(address, options).nodes.filter((n) => n.subsystem === "block").map((n) => n.name).sort();
}

function interfaceUses(nodes: readonly TreeNode[], scan: SystemScan): DeviceUse[] {
  const net = scan.cached("net", () => readNetState(scan.options));
  const out: DeviceUse[] = [];
  for (const n of nodes.filter((n) => n.subsystem === "net").sort((a, b) => a.name.localeCompare(b.name))) {
    const up = ((readNumber(join(n.dir, "flags")) ?? 0) & IFF_UP) !== 0 || readAttr(join(n.dir, "operstate")) === "up";
    const addresses = net.addresses.get(n.name) ?? [];
    const routes = net.defaultRoutes.get(n.name) ?? [];
    if (!up && addresses.length === 0 && routes.length === 0) continue;
    let text = `network interface ${n.name} is ${up ? "up" : "down"}`;
    if (addresses.length > 0) text += ` with address${addresses.length > 1 ? "es" : ""} ${addresses.join(", ")}`;
    if (routes.length > 0) text += ` and carries the default route (${routes.join(", ")})`;
    const kind = routes.length > 0 ? "default-route" : up ? "interface-up" : "address";
    out.push({ kind, name: n.name, description: text, critical: routes.length > 0 });
  }
  return out;
}

function blockUses(blocks: readonly TreeNode[], scan: SystemScan): DeviceUse[] {
  const out: DeviceUse[] = [];
  const byKey = new Map<string, TreeNode>();
  for (const b of blocks) for (const k of nodeKeySet(b)) byKey.set(k, b);
  const match = (keys: readonly string[]): TreeNode | undefined => {
    for (const k of keys) if (byKey.has(k)) return byKey.get(k);
  };
  const seen = new Set<string>();
  // one line per block device and mount point: a namespace's root first, then the caller's own namespace
  const mounts = [...scan.mounts].sort((a, b) =>
    Number(b.isRoot) - Number(a.isRoot) || Number(a.otherNamespace) - Number(b.otherNamespace)
  );
  for (const m of mounts) {
    const b = match(m.keys);
    if (b === undefined) continue;
    const where = m.otherNamespace ? ` in the mount namespace of pid ${m.process.pid} (${m.process.command})` : "";
    const key = `${b.name} ${m.mountPoint}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const root = m.isRoot ? " (the root file system)" : "";
    out.push({
      kind: "mounted",
      name: b.name,
      description: `${label(b)} is mounted on ${m.mountPoint}${root}${where}`,
      critical: m.isRoot,
      process: m.otherNamespace ? m.process : undefined,
    });
  }
  for (const s of scan.swaps) {
    const b = match(s.keys);
    if (b !== undefined) {
      const file = s.path === `/dev/${b.devName}` ? "" : ` (${s.path})`;
      out.push({ kind: "swap", name: b.name, description: `${label(b)} holds swap${file}`, critical: false });
    }
  }
  for (const b of blocks) {
    const holders = list(join(b.dir, "holders"));
    if (holders.length === 0) continue;
    const kinds = holders.map((h) => quietly(() => `${h} (${holderKind(realpathSync(join(b.dir, "holders", h)))})`, h));
    out.push({
      kind: "held",
      name: b.name,
      description: `${label(b)} is held by ${kinds.join(", ")}`,
      critical: false,
    });
  }
  const btrfs = hostPath(scan.options, "/sys/fs/btrfs");
  const dirs = new Map(blocks.map((b) => [b.dir, b]));
  for (const fs of list(btrfs)) {
    for (const dev of list(join(btrfs, fs, "devices"))) {
      const b = dirs.get(quietly(() => realpathSync(join(btrfs, fs, "devices", dev)), ""));
      if (b === undefined) continue;
      const name = readAttr(join(btrfs, fs, "label")) || fs;
      out.push({
        kind: "held",
        name: b.name,
        description: `${label(b)} is a device of the mounted btrfs file system ${name}`,
        critical: false,
      });
    }
  }
  return out;
}

/**
 * The block devices the kernel refuses to open exclusively (EBUSY): claimed by a mount, swap, a holder, ZFS or
 * anything else, in any namespace. Only real device nodes whose number matches sysfs are probed (read-only,
 * non-blocking, closed at once); a fake tree has none.
 */
function claimedBlocks(blocks: readonly TreeNode[], options: SysfsOptions): TreeNode[] {
  return blocks.filter((b) => {
    if (b.devName === null || b.devNumber === null) return false;
    const path = `/dev/${b.devName}`;
    if (!nodeKeys(path, options).includes(`b:${b.devNumber}`)) return false;
    try {
      libc.close(libc.open(hostPath(options, path), O_RDONLY | O_EXCL | O_NONBLOCK | O_CLOEXEC));
      return false;
    } catch (e) {
      return e instanceof SystemError && e.code === "EBUSY";
    }
  });
}

function nodeUses(nodes: readonly TreeNode[], scan: SystemScan): DeviceUse[] {
  const out: DeviceUse[] = [];
  for (const n of nodes) {
    const seen = new Set<number>();
    for (const key of nodeKeySet(n)) {
      for (const o of scan.openers.get(key) ?? []) {
        if (seen.has(o.process.pid)) continue;
        seen.add(o.process.pid);
        out.push({
          kind: "open",
          name: n.name,
          description: `process ${o.process.pid} (${o.process.command}) has ${o.path} open`,
          critical: false,
          process: o.process,
        });
      }
    }
  }
  const consoles = readTextFile("/proc/consoles", scan.options).split("\n").flatMap((line) => {
    const f = line.trim().split(/\s+/);
    return f.length >= 2 && /^\d+:\d+$/.test(f[f.length - 1]) ? [`c:${f[f.length - 1]}`] : [];
  });
  for (const n of nodes.filter((n) => n.subsystem === "tty" && consoles.includes(`c:${n.devNumber}`))) {
    out.push({ kind: "console", name: n.name, description: `${n.name} is a kernel console`, critical: false });
  }
  const vt = hostPath(scan.options, "/sys/class/vtconsole");
  const fbcon = list(vt).some((c) =>
    /frame ?buffer/i.test(readAttr(join(vt, c, "name")) ?? "") && readAttr(join(vt, c, "bind")) === "1"
  );
  for (const n of nodes.filter((n) => fbcon && n.subsystem === "graphics" && /^fb\d+$/.test(n.name))) {
    const description = `${n.name} carries the framebuffer console`;
    out.push({ kind: "framebuffer-console", name: n.name, description, critical: false });
  }
  for (const n of nodes.filter((n) => n.subsystem === "virtio" && /vsock/.test(n.driver ?? ""))) {
    const line = readTextFile("/proc/net/protocols", scan.options).match(/^AF_VSOCK\s+\d+\s+(\d+)/m);
    const sockets = line ? `, ${line[1]} socket(s) open in this network namespace` : "";
    const description = `${n.name} is the virtio-vsock transport of host<->guest AF_VSOCK sockets${sockets}`;
    out.push({ kind: "vsock", name: n.name, description, critical: false });
  }
  return out;
}

/**
 * Every way the system uses the device through its current driver; empty when it is safe to take it away.
 * Devices on vfio-pci report nothing here (see `vfioHolders` for processes holding them through VFIO). Pass one
 * {@linkcode SystemScan} to check many devices with one read of `/proc`.
 *
 * ```ts
 * import { deviceUsers } from "@vfio-ts/vfio/sysfs";
 * const uses = deviceUsers("0000:00:04.0");
 * if (uses.length > 0) throw new Error(`in use: ${uses.map((u) => u.description).join("; ")}`);
 * if (uses.some((u) => u.critical)) console.log("this is the machine's root disk or network connection");
 * ```
 */
export function deviceUsers(
  address: string | PciAddress,
  options: SysfsOptions = {},
  scan: SystemScan = new SystemScan(options),
): DeviceUse[] {
  const { nodes } = deviceTree(address, options);
  const blocks = nodes.filter((n) => n.subsystem === "block");
  const out = [...interfaceUses(nodes, scan), ...blockUses(blocks, scan), ...nodeUses(nodes, scan)];
  if (blocks.length > 0 && !out.some((u) => blocks.some((b) => b.name === u.name))) {
    const claimed = claimedBlocks(blocks, options);
    if (claimed.length > 0) {
      out.push({
        kind: "claimed",
        name: claimed[0].name,
        description: `${claimed.map(label).join(", ")} ${claimed.length > 1 ? "are" : "is"} claimed by the kernel ` +
          "(mounted, swap or held in a way this scan cannot name: another namespace's view, ZFS, a driver)",
        critical: false,
      });
    }
  }
  return out;
}
