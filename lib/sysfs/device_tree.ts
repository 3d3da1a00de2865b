/**
 * The kernel devices that hang off one PCI device, at any depth: its network interfaces (virtio-net puts them at
 * `…/0000:00:03.0/virtio2/net/eth0`), block devices and partitions, NVMe controllers and, through their NVMe
 * subsystem, the multipath head namespaces under `/sys/devices/virtual/nvme-subsystem/…`, char devices (DRM,
 * input, tty, framebuffers), virtio children with their drivers, and every block device stacked on top of those
 * (device-mapper, md, bcache: `holders/`, recursively). Pure sysfs reads under {@linkcode SysfsOptions.root}.
 *
 * ```ts
 * import { deviceTree } from "./device_tree.ts";
 * for (const n of deviceTree("0000:00:04.0").nodes) console.log(n.subsystem, n.name, n.devNumber);
 * ```
 * @module
 */

import { type Dirent, readdirSync, realpathSync } from "node:fs";
import { basename, join } from "node:path";
import type { PciAddress } from "../pci_address.ts";
import { hostPath, readAttr, readLinkName, type SysfsOptions } from "./attr.ts";
import { pciDevicePath } from "./pci.ts";
import { quietly } from "./proc_scan.ts";

/** One kernel device below a PCI device (a directory of the sysfs tree with a `subsystem` link). */
export interface TreeNode {
  /** Its kernel name (`eth0`, `nvme0n1p1`, `card0`, `virtio2`). */
  readonly name: string;
  /** The class or bus it belongs to (`net`, `block`, `nvme`, `drm`, `input`, `tty`, `graphics`, `virtio` …). */
  readonly subsystem: string;
  /** Its real sysfs directory (under the options' root). */
  readonly dir: string;
  /** `major:minor` of its device node, from its `dev` attribute; `null` when it has none (interfaces). */
  readonly devNumber: string | null;
  /** Its node's path under `/dev` (`nvme0n1`, `dri/card0`, `input/event3`) from `uevent`, or `null`. */
  readonly devName: string | null;
  /** The driver bound to it (virtio children), or `null`. */
  readonly driver: string | null;
  /** For a device stacked on the PCI device's own (a holder, a multipath head): the chain, e.g. `["nvme0n2"]`. */
  readonly via: readonly string[];
}

/** Everything below one PCI device. */
export interface DeviceTree {
  /** The PCI device's real sysfs directory, or `null` when it does not exist. */
  readonly dir: string | null;
  /** Every kernel device found, the device's own first, then heads and holders. */
  readonly nodes: readonly TreeNode[];
}

/** Directories never worth descending into (attribute groups with many entries and no devices). */
const SKIP = new Set(["power", "msi_irqs", "queue", "mq", "trace", "integrity", "statistics", "queues", "holders"]);
/** A child PCI function (behind a bridge): a device of its own, with its own driver. */
const PCI_CHILD = /^[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
/** Guards against a malformed tree: the kernel's deepest chains are about ten levels. */
const MAX_DEPTH = 16;

const entries = (dir: string): Dirent[] => quietly(() => readdirSync(dir, { withFileTypes: true }), []);
const real = (path: string): string | null => quietly(() => realpathSync(path), null);

function node(dir: string, via: readonly string[]): TreeNode | null {
  const subsystem = readLinkName(join(dir, "subsystem"));
  if (subsystem === null) return null;
  const devName = (readAttr(join(dir, "uevent")) ?? "").match(/^DEVNAME=(.+)$/m)?.[1] ?? null;
  return {
    name: basename(dir),
    subsystem,
    dir,
    devNumber: readAttr(join(dir, "dev"))?.trim() ?? null,
    devName,
    driver: readLinkName(join(dir, "driver")),
    via,
  };
}

/**
 * Walks `top` (real directories only: sysfs's symlinks point back up or sideways) and collects its kernel
 * devices; child PCI functions are left out unless `top` is one.
 */
function walk(top: string, via: readonly string[], seen: Set<string>, out: TreeNode[], root: boolean): void {
  const visit = (dir: string, depth: number): void => {
    if (seen.has(dir) || depth > MAX_DEPTH) return;
    seen.add(dir);
    if (!(root && depth === 0)) {
      const n = node(dir, via);
      if (n !== null) out.push(n);
    }
    for (const e of entries(dir)) {
      if (!e.isDirectory() || SKIP.has(e.name) || PCI_CHILD.test(e.name)) continue;
      visit(join(dir, e.name), depth + 1);
    }
  };
  visit(top, 0);
}

/** The NVMe subsystem directories (`nvme-subsysN`) that list one of `controllers` among their paths. */
function nvmeSubsystems(controllers: readonly TreeNode[], options: SysfsOptions): string[] {
  if (controllers.length === 0) return [];
  const dirs = new Set(controllers.map((c) => c.dir));
  const classDir = hostPath(options, "/sys/class/nvme-subsystem");
  const out: string[] = [];
  for (const s of entries(classDir)) {
    const dir = real(join(classDir, s.name));
    if (dir === null) continue;
    if (entries(dir).some((e) => e.isSymbolicLink() && dirs.has(real(join(dir, e.name)) ?? ""))) out.push(dir);
  }
  return out;
}

/**
 * Every kernel device below a PCI device, at any depth, plus the NVMe multipath heads reached through its
 * controllers and the block devices stacked on its block devices (`holders/`, recursively).
 *
 * ```ts
 * import { deviceTree } from "./device_tree.ts";
 * const tree = deviceTree("0000:00:03.0");
 * console.log(tree.nodes.filter((n) => n.subsystem === "net").map((n) => n.name)); // ["eth0"]
 * ```
 */
export function deviceTree(address: string | PciAddress, options: SysfsOptions = {}): DeviceTree {
  const dir = real(pciDevicePath(address, options));
  if (dir === null) return { dir: null, nodes: [] };
  const seen = new Set<string>();
  const nodes: TreeNode[] = [];
  walk(dir, [], seen, nodes, true);
  for (const sub of nvmeSubsystems(nodes.filter((n) => n.subsystem === "nvme"), options)) {
    walk(sub, [basename(sub)], seen, nodes, true);
  }
  // holders, breadth first: each holder brings its own tree (md partitions) and its own holders
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i];
    if (n.subsystem !== "block") continue;
    const holders = join(n.dir, "holders");
    for (const h of entries(holders)) {
      const target = real(join(holders, h.name));
      if (target !== null) walk(target, [...n.via, n.name], seen, nodes, false);
    }
  }
  return { dir, nodes };
}

/**
 * What kind of block device a holder is, for messages: LVM, multipath, dm-crypt (from device-mapper's
 * `dm/uuid` prefix), other device-mapper, md RAID, bcache.
 *
 * ```ts
 * import { holderKind } from "./device_tree.ts";
 * console.log(holderKind("/sys/devices/virtual/block/dm-0")); // "LVM" (from dm/uuid "LVM-…")
 * ```
 */
export function holderKind(dir: string): string {
  const uuid = readAttr(join(dir, "dm", "uuid")) ?? "";
  const prefix = uuid.split("-")[0];
  if (prefix === "LVM") return "LVM";
  if (prefix === "mpath") return "multipath";
  if (prefix === "CRYPT") return "dm-crypt";
  if (readAttr(join(dir, "dm", "name")) !== null) return "device-mapper";
  const name = basename(dir);
  if (name.startsWith("md")) return "md RAID";
  if (name.startsWith("bcache")) return "bcache";
  return "a stacked block device";
}
