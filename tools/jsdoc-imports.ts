// JSDoc examples import what a user imports: `@vfio-ts/vfio` or one of its subpaths, not a relative path. This
// finds each example import line (` * import { … } from "./x.ts";`) in lib/, cli/ and ffi/ whose names one entry
// point exports, and names the entry that fits the file (lib/sysfs -> ./sysfs, lib/iommu -> ./iommu, lib/abi ->
// ./abi, cli -> ./cli, else the root). Imports of internals no entry exports stay relative.
// node_modules/deno/deno run -A tools/jsdoc-imports.ts [--fix]   (without --fix: lists them and exits 1 if any)
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import process from "node:process";

const ROOT = new URL("..", import.meta.url).pathname;
const DENO = process.env.VFIO_TS_DENO ?? `${ROOT}node_modules/deno/deno`;
const deno = JSON.parse(readFileSync(`${ROOT}deno.json`, "utf8"));
const NAME: string = deno.name;
const ENTRIES: Record<string, string> = deno.exports; // "./sysfs" -> "./sysfs.ts"

/** The names each entry point exports, from `deno doc --json`. */
function exported(file: string): Set<string> {
  const r = spawnSync(DENO, ["doc", "--json", file], { cwd: ROOT, encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`deno doc ${file}: ${r.stderr}`);
  const doc = JSON.parse(r.stdout);
  const nodes: { name: string }[] = Array.isArray(doc.nodes)
    ? doc.nodes
    : Object.values(doc.nodes ?? doc).flatMap((m) => (m as { symbols?: { name: string }[] }).symbols ?? []);
  return new Set(nodes.map((n) => n.name));
}

const names = new Map(Object.entries(ENTRIES).map(([sub, file]) => [sub, exported(file)]));
const specifier = (sub: string): string => sub === "." ? NAME : `${NAME}/${sub.slice(2)}`;

/** Entries to try for a file, the one of its own area first. */
function order(path: string): string[] {
  const own = path.startsWith("lib/sysfs/") || path === "lib/pci_address.ts"
    ? "./sysfs"
    : path.startsWith("lib/iommu/") ||
        ["lib/container.ts", "lib/group.ts", "lib/open_paths.ts", "lib/dma/iova_allocator.ts"].includes(path)
    ? "./iommu"
    : path.startsWith("lib/abi/")
    ? "./abi"
    : path.startsWith("cli/")
    ? "./cli"
    : ".";
  return [own, ...Object.keys(ENTRIES).filter((e) => e !== own && own !== "./abi")];
}

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []
  );
}

const fix = process.argv.includes("--fix");
const LINE = /^( \* import (?:type )?\{)([^}]*)(\} from )"(\.[^"]*)";(.*)$/;
let found = 0;
for (const path of [...files("lib"), ...files("cli"), ...files("ffi"), "mod.ts"]) {
  const lines = readFileSync(join(ROOT, path), "utf8").split("\n");
  let changed = false;
  lines.forEach((line, i) => {
    const m = LINE.exec(line);
    if (!m) return;
    const wanted = m[2].split(",").map((n) => n.trim().replace(/^type /, "").split(" as ")[0].trim()).filter(Boolean);
    const entry = order(path).find((e) => wanted.every((n) => names.get(e)?.has(n)));
    if (!entry) return;
    found++;
    console.log(`${relative(ROOT, join(ROOT, path))}:${i + 1}: "${m[4]}" -> "${specifier(entry)}"`);
    lines[i] = `${m[1]}${m[2]}${m[3]}"${specifier(entry)}";${m[5]}`;
    changed = true;
  });
  if (fix && changed) writeFileSync(join(ROOT, path), lines.join("\n"));
}
if (found === 0) console.log("jsdoc imports: every example imports the package by name");
else if (!fix) console.log(`jsdoc imports: ${found} example import(s) by relative path (tools/jsdoc-imports.ts --fix)`);
process.exit(found > 0 && !fix ? 1 : 0);
