/**
 * A fake file tree for host unit tests (sysfs, procfs, /dev), in a temp directory: files with text, symlinks
 * shaped like the kernel's, directories, made with their parents on the way. Pass the root as the library's
 * `sysfsRoot`/`root` option.
 *
 * ```ts
 * import { FakeTree, treeFile } from "./fake_tree.ts";
 * const tree = new FakeTree("vfio-ts-example-");
 * tree.file("/sys/bus/pci/devices/0000:00:03.0/vendor", "0x1234\n");
 * tree.link("/proc/100/fd/3", "/dev/vfio/3");
 * treeFile(tree.root, "/sys/bus/pci/drivers_probe", "");
 * tree.remove();
 * ```
 * @module
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** Writes `text` to `path` under `root`, making its directories. */
export function treeFile(root: string, path: string, text: string): void {
  const p = join(root, path);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
}

/** Makes `path` under `root` a symbolic link to `target` as written (relative or absolute, dangling allowed). */
export function treeLink(root: string, path: string, target: string): void {
  const p = join(root, path);
  mkdirSync(dirname(p), { recursive: true });
  symlinkSync(target, p);
}

/** A temp directory standing in for `/`. */
export class FakeTree {
  /** The directory standing in for `/`. */
  readonly root: string;

  /** Makes the temp directory (`prefix` names it). */
  constructor(prefix = "vfio-ts-tree-") {
    this.root = mkdtempSync(join(tmpdir(), prefix));
  }

  /** The host path of `path` in the tree. */
  path(path: string): string {
    return join(this.root, path);
  }

  /** Writes a file (parents made as needed). */
  file(path: string, text: string): void {
    treeFile(this.root, path, text);
  }

  /** Makes a symlink at `path` pointing at `target` as written. */
  link(path: string, target: string): void {
    treeLink(this.root, path, target);
  }

  /** Makes a directory (and its parents). */
  dir(path: string): void {
    mkdirSync(this.path(path), { recursive: true });
  }

  /** Deletes the whole tree. */
  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
