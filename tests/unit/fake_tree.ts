/**
 * Building fake sysfs/procfs trees for unit tests: files and symlinks at absolute-looking paths under a temporary
 * root, with their parent directories made on the way.
 *
 * ```ts
 * import { treeFile, treeLink } from "./fake_tree.ts";
 * treeFile("/tmp/root", "/sys/bus/pci/drivers_probe", "");
 * treeLink("/tmp/root", "/sys/bus/pci/devices/0000:00:03.0", "../../../devices/pci0000:00/0000:00:03.0");
 * ```
 * @module
 */
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** Writes `text` to `path` under `root`, making its directories. */
export function treeFile(root: string, path: string, text: string): void {
  const p = join(root, path);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
}

/** Makes `path` under `root` a symbolic link to `target`, making its directories. */
export function treeLink(root: string, path: string, target: string): void {
  const p = join(root, path);
  mkdirSync(dirname(p), { recursive: true });
  symlinkSync(target, p);
}
