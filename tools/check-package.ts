// What the package ships, checked before it ships: `deno publish --dry-run` (JSR) must pass with no warning at all,
// and both it and `npm pack --dry-run` (npm, Bun) must list only the library: the entry files, lib/, cli/, the
// TypeScript of ffi/ and the helper's C source, README.md, LICENSE and the manifest. Every exports-map target must
// be in both listings. Exits 1 and says which file or which warning when not.
// node_modules/deno/deno run -A tools/check-package.ts
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";

const ROOT = new URL("..", import.meta.url).pathname;
const DENO = process.env.VFIO_TS_DENO ?? `${ROOT}node_modules/deno/deno`;

/** The only files a published package may hold. */
const ALLOWED = [
  /^(mod|sysfs|iommu|abi|cli)\.ts$/,
  /^lib\/[\w/]+\.ts$/,
  /^cli\/[\w/]+\.ts$/,
  /^ffi\/\w+\.ts$/,
  /^ffi\/poll_helper\.c$/,
  /^(README\.md|LICENSE)$/,
];

let failures = 0;
function fail(what: string): void {
  failures++;
  console.log(`FAIL ${what}`);
}

function run(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

function checkListing(tool: string, files: string[], manifest: string): void {
  if (files.length === 0) fail(`${tool}: lists no files`);
  for (const f of files) {
    if (f !== manifest && !ALLOWED.some((re) => re.test(f))) fail(`${tool}: ships ${f}, which is not library code`);
  }
  const exportsMap: Record<string, string> = JSON.parse(readFileSync(`${ROOT}${manifest}`, "utf8")).exports;
  const required = [...Object.values(exportsMap).map((p) => p.replace(/^\.\//, "")), "README.md", "LICENSE"];
  for (const r of required) if (!files.includes(r)) fail(`${tool}: does not ship ${r}`);
  console.log(`${tool}: ${files.length} files`);
}

// JSR. --allow-dirty: the check is about the files, not about whether they are committed.
const jsr = run(DENO, ["publish", "--dry-run", "--allow-dirty"]);
const warnings = jsr.out.split("\n").filter((l) => /^(warning|error)(\[[\w-]+\])?:/.test(l));
for (const w of warnings) fail(`deno publish --dry-run: ${w}`);
if (jsr.status !== 0) fail(`deno publish --dry-run exited ${jsr.status}:\n${jsr.out}`);
const jsrFiles = [...jsr.out.matchAll(/^\s+file:\/\/(\S+) \(/gm)].map((m) => m[1].slice(ROOT.length));
checkListing("deno publish", jsrFiles, "deno.json");

// npm (what `bun add`, `npm install` get).
const npm = run("npm", ["pack", "--dry-run", "--json", "--loglevel=error"]);
if (npm.status !== 0) fail(`npm pack --dry-run exited ${npm.status}:\n${npm.out}`);
else {
  const listing: { files: { path: string }[] }[] = JSON.parse(npm.out.slice(npm.out.indexOf("[")));
  checkListing("npm pack", listing[0].files.map((f) => f.path), "package.json");
}

// The two manifests describe one package.
const deno = JSON.parse(readFileSync(`${ROOT}deno.json`, "utf8"));
const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, "utf8"));
if (deno.name !== pkg.name) fail(`names differ: deno.json ${deno.name}, package.json ${pkg.name}`);
if (deno.version !== pkg.version) fail(`versions differ: deno.json ${deno.version}, package.json ${pkg.version}`);
if (JSON.stringify(deno.exports) !== JSON.stringify(pkg.exports)) fail("deno.json and package.json exports differ");

console.log(failures === 0 ? "package: ok" : `package: ${failures} problem(s)`);
process.exit(failures === 0 ? 0 : 1);
