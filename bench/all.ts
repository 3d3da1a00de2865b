/**
 * The whole benchmark suite, one command (`deno task bench`): every figure on Deno and on Bun, each beside its C
 * baseline measured in the same run, printed as one markdown table with the ratios and the goals of issue #8.
 * - P1 register access, P2 packet path, P4 address translation: `bench/host.ts` on each runtime;
 * - P3 interrupt latency: in the QEMU guest (edu, iommu mode), the C baseline and both runtimes in one boot;
 * - P5 start-up: `bench/startup.ts` in fresh processes, beside a C program that dlopens libc and the helper;
 * - and the FFI call cost (`bench/ffi_cost.ts`) for reference.
 * Options: `--no-vm` skips P3; `--quick` runs fewer repetitions; `--json FILE` also writes the raw results.
 *
 * @module
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { embeddedHelper } from "../ffi/poll_helper.ts";

const { values: opts } = parseArgs({
  args: process.argv.slice(2),
  options: { "no-vm": { type: "boolean" }, quick: { type: "boolean" }, json: { type: "string" } },
});
const DENO = "node_modules/deno/deno", BUN = "node_modules/bun/bin/bun.exe";
const env = { ...process.env, NO_COLOR: "1", ...(opts.quick ? { BENCH_REPEAT: "2", BENCH_PACKETS: "100000" } : {}) };
const cwd = new URL("..", import.meta.url).pathname;

/** Runs a command (stderr shown as progress) and returns the JSON of every `RESULT` line of its stdout. */
function results(cmd: string, args: string[]): Record<string, unknown>[] {
  const r = spawnSync(cmd, args, { cwd, env, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const found = (r.stdout ?? "").split("\n").filter((l) => l.startsWith("RESULT ")).map((l) => JSON.parse(l.slice(7)));
  if (r.status !== 0 || found.length === 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}):\n${r.stdout}`);
  }
  return found;
}
const wall = (cmd: string, args: string[]): number => {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd, env, stdio: "ignore" });
  if (r.status !== 0) throw new Error(`${cmd} failed`);
  return performance.now() - t0;
};

// deno-lint-ignore no-explicit-any
type Any = any;
const all: Record<string, Any> = {};
console.error("=== FFI call cost (bench/ffi_cost.ts)");
for (
  const [rt, cmd] of [["deno", [DENO, "run", "-A", "bench/ffi_cost.ts"]], ["bun", [BUN, "bench/ffi_cost.ts"]]] as const
) {
  console.error(execFileSync(cmd[0], cmd.slice(1), { cwd, env, encoding: "utf8" }).trimEnd());
  void rt;
}
console.error("=== P1, P2, P4 on the host (bench/host.ts)");
all.deno = results(DENO, ["run", "-A", "bench/host.ts"])[0];
all.bun = results(BUN, ["bench/host.ts"])[0];

console.error("=== P5 start-up (bench/startup.ts, fresh processes)");
{
  const dir = mkdtempSync(join(tmpdir(), "vfio-ts-bench-"));
  const exe = join(dir, "startup"), helper = join(dir, "libvfio_ts_poll.so");
  execFileSync("gcc", ["-O2", "-o", exe, "bench/c/startup.c"], { cwd });
  writeFileSync(helper, embeddedHelper()!); // the C baseline dlopens the same object from a file
  const runs = opts.quick ? 3 : 7;
  const min = (xs: number[]): number => Math.min(...xs);
  const inProc = (cmd: string, args: string[]): number =>
    min(Array.from({ length: runs }, () => results(cmd, args)[0].total_ms as number));
  all.p5 = {
    deno: inProc(DENO, ["run", "-A", "bench/startup.ts"]),
    bun: inProc(BUN, ["bench/startup.ts"]),
    deno_process: min(Array.from({ length: runs }, () => wall(DENO, ["run", "-A", "bench/startup.ts"]))),
    bun_process: min(Array.from({ length: runs }, () => wall(BUN, ["bench/startup.ts"]))),
    c_process: min(Array.from({ length: runs }, () => wall(exe, [helper]))),
  };
}

if (!opts["no-vm"]) {
  console.error("=== P3 interrupt latency in the guest (edu, iommu mode; C, Deno, Bun in one boot)");
  const rounds = opts.quick ? 500 : 2000;
  const cmd = `gcc -O2 -o /tmp/irq_guest bench/c/irq_guest.c && /tmp/irq_guest $VFIO_TS_EDU ${rounds} && ` +
    `$VFIO_TS_DENO run -A bench/irq_guest.ts ${rounds} && $VFIO_TS_BUN bench/irq_guest.ts ${rounds}`;
  const [c, deno, bun] = results(DENO, [
    "run",
    "-A",
    "tests/vm/vm.ts",
    "--mode",
    "iommu",
    "--devices",
    "edu",
    "--cmd",
    cmd,
  ]);
  all.p3 = { c, deno, bun };
}

// ---------------------------------------------------------------- the table
const d = all.deno, b = all.bun;
const f = (x: number, digits = 1): string => (x >= 100 ? x.toFixed(0) : x.toFixed(digits));
const rows: string[][] = [];
const row = (
  name: string,
  dv: number,
  bv: number,
  c: number | [number, number], // one C figure, or the C figure measured inside the Deno and the Bun process
  unit: string,
  goal: string,
  met: string,
): void => {
  const [cd, cb] = typeof c === "number" ? [c, c] : c;
  const cText = cd === cb ? `${f(cd)} ${unit}` : `${f(cd)} / ${f(cb)} ${unit}`;
  rows.push([
    name,
    `${f(dv)} ${unit}`,
    `${f(bv)} ${unit}`,
    cText,
    `${(dv / cd).toFixed(2)}×`,
    `${(bv / cb).toFixed(2)}×`,
    goal,
    met,
  ]);
};
const yes = (ok: boolean): string => (ok ? "yes" : "**no**");
row(
  "P1 read32 (`Region.read32`) vs C volatile load",
  d.p1.read_api,
  b.p1.read_api,
  [d.p1.read_c, b.p1.read_c],
  "ns",
  "≤ 8 ns",
  yes(d.p1.read_api <= 8 && b.p1.read_api <= 8),
);
row(
  "P1 write32 (`Region.write32`) vs C volatile store",
  d.p1.write_api,
  b.p1.write_api,
  [d.p1.write_c, b.p1.write_c],
  "ns",
  "≤ 2 ns",
  yes(d.p1.write_api <= 2 && b.p1.write_api <= 2),
);
row(
  "P1 raw `Atomics.load` (reference)",
  d.p1.read_atomics,
  b.p1.read_atomics,
  [d.p1.read_c, b.p1.read_c],
  "ns",
  "",
  "",
);
row(
  "P1 raw typed-array load (reference, hoistable)",
  d.p1.read_raw,
  b.p1.read_raw,
  [d.p1.read_c, b.p1.read_c],
  "ns",
  "",
  "",
);
row("P1 raw typed-array store (reference)", d.p1.write_raw, b.p1.write_raw, [d.p1.write_c, b.p1.write_c], "ns", "", "");
const hoist = (h: Any): string => `API: ${h.read_api}; helper: ${h.poller}; raw array: ${h.read_raw}`;
rows.push([
  "P1 reads never hoisted (C thread writes after 20 ms)",
  hoist(d.p1.hoisting),
  hoist(b.p1.hoisting),
  "",
  "",
  "",
  "API reads seen",
  yes(!/NOT/.test(d.p1.hoisting.read_api + b.p1.hoisting.read_api)),
]);
for (const batch of ["1", "8", "32", "128", "256"]) {
  const goal = batch === "32" ? "TS + helper ≤ 1.3× C" : "";
  const helperMet = batch === "32"
    ? yes(d.p2[batch].helper / d.p2[batch].c <= 1.3 && b.p2[batch].helper / b.p2[batch].c <= 1.3)
    : "";
  // C runs inside each runtime's process: the ratio of each runtime uses its own C figure.
  rows.push([
    `P2 batch ${batch}: pure TS`,
    `${f(d.p2[batch].ts)} ns`,
    `${f(b.p2[batch].ts)} ns`,
    `${f(d.p2[batch].c)} / ${f(b.p2[batch].c)} ns`,
    `${(d.p2[batch].ts / d.p2[batch].c).toFixed(2)}×`,
    `${(b.p2[batch].ts / b.p2[batch].c).toFixed(2)}×`,
    "",
    "",
  ]);
  rows.push([
    `P2 batch ${batch}: TS + C poll helper`,
    `${f(d.p2[batch].helper)} ns`,
    `${f(b.p2[batch].helper)} ns`,
    `${f(d.p2[batch].c)} / ${f(b.p2[batch].c)} ns`,
    `${(d.p2[batch].helper / d.p2[batch].c).toFixed(2)}×`,
    `${(b.p2[batch].helper / b.p2[batch].c).toFixed(2)}×`,
    goal,
    helperMet,
  ]);
}
if (all.p3) {
  const { c, deno, bun } = all.p3;
  row(
    "P3 edu MSI → `await wait()` resumes (median)",
    deno.wait.median_us,
    bun.wait.median_us,
    c.median_us,
    "µs",
    "≤ 1.3× C",
    yes(deno.wait.median_us / c.median_us <= 1.3 && bun.wait.median_us / c.median_us <= 1.3),
  );
  row(
    "P3 edu MSI → `spin()` returns (median)",
    deno.spin.median_us,
    bun.spin.median_us,
    c.median_us,
    "µs",
    "≤ 1.3× C",
    yes(deno.spin.median_us / c.median_us <= 1.3 && bun.spin.median_us / c.median_us <= 1.3),
  );
  rows.push([
    "P3 interrupts/s, `wait()` (ratio: C rate / runtime rate)",
    f(deno.wait.per_s),
    f(bun.wait.per_s),
    f(c.per_s),
    `${(c.per_s / deno.wait.per_s).toFixed(2)}×`,
    `${(c.per_s / bun.wait.per_s).toFixed(2)}×`,
    "",
    "",
  ]);
  rows.push([
    "P3 interrupts/s, `spin()`",
    f(deno.spin.per_s),
    f(bun.spin.per_s),
    f(c.per_s),
    `${(c.per_s / deno.spin.per_s).toFixed(2)}×`,
    `${(c.per_s / bun.spin.per_s).toFixed(2)}×`,
    "",
    "",
  ]);
}
if (d.p4 && b.p4) {
  rows.push([
    "P4 bus address: table lookup vs one pagemap `pread` (C) per lookup",
    `${f(d.p4.lookup)} ns`,
    `${f(b.p4.lookup)} ns`,
    `${f(d.p4.pread_c)} / ${f(b.p4.pread_c)} ns`,
    `${(d.p4.pread_c / d.p4.lookup).toFixed(0)}× faster`,
    `${(b.p4.pread_c / b.p4.lookup).toFixed(0)}× faster`,
    "≥ 20× faster",
    yes(d.p4.pread_c / d.p4.lookup >= 20 && b.p4.pread_c / b.p4.lookup >= 20),
  ]);
}
const p5 = all.p5;
rows.push([
  "P5 import `mod.ts` (libc bound) + load helper, in process",
  `${f(p5.deno)} ms`,
  `${f(p5.bun)} ms`,
  "",
  "",
  "",
  "≤ 50 ms",
  yes(p5.deno <= 50 && p5.bun <= 50),
]);
row(
  "P5 whole process (spawn → exit) vs C dlopen of libc + helper",
  p5.deno_process,
  p5.bun_process,
  p5.c_process,
  "ms",
  "",
  "",
);

const header = ["figure", "Deno", "Bun", "C (same run)", "Deno / C", "Bun / C", "goal", "met"];
const load = (() => {
  try {
    return execFileSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
})();
console.log(
  `\nvfio-ts benchmarks: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, load average ${load}, ${
    new Date().toISOString()
  }`,
);
console.log(
  `helper: ${
    d.helper && b.helper ? "loaded on both runtimes" : "NOT loaded"
  }; P1, P2 and P4 C baselines run inside each runtime's process\n`,
);
console.log(`| ${header.join(" | ")} |\n| ${header.map(() => "---").join(" | ")} |`);
for (const r of rows) console.log(`| ${r.join(" | ")} |`);
if (opts.json) writeFileSync(opts.json, JSON.stringify(all, null, 2));
