/**
 * What one call through the libc facade costs, beside the same call in C, measured in the same run:
 * a trivial libc call with no syscall (`sysconf(_SC_PAGESIZE)`) and an `ioctl(FIONREAD)` on a pipe.
 * Run: `deno run -A bench/ffi_cost.ts` and `bun bench/ffi_cost.ts` (or `deno task bench`).
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FIONREAD, SC_PAGESIZE } from "../ffi/constants.ts";
import { libc } from "../ffi/libc.ts";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

function measure(iterations: number, body: () => void): number {
  for (let i = 0; i < iterations / 10; i++) body(); // warm up the JIT
  const runs: number[] = [];
  for (let k = 0; k < 9; k++) {
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) body();
    runs.push(((performance.now() - t0) * 1e6) / iterations);
  }
  return median(runs);
}

function cBaseline(): Record<string, number> {
  const dir = mkdtempSync(join(tmpdir(), "vfio-ts-bench-"));
  const exe = join(dir, "ffi_cost");
  const src = new URL("./c/ffi_cost.c", import.meta.url).pathname;
  execFileSync("gcc", ["-O2", "-o", exe, src]);
  const out: Record<string, number> = {};
  for (const line of execFileSync(exe).toString().trim().split("\n")) {
    const [name, ns] = line.split(" ");
    out[name] = Number(ns);
  }
  return out;
}

const [r, w] = libc.pipe(0);
const count = new Int32Array(1);
let sink = 0;
const ts = {
  sysconf: measure(2_000_000, () => {
    sink += libc.sysconf(SC_PAGESIZE);
  }),
  ioctl_fionread: measure(200_000, () => {
    sink += libc.ioctl(r, FIONREAD, count);
  }),
};
libc.close(r);
libc.close(w);
const c = cBaseline();
console.log(`FFI cost on ${libc.runtime} (median ns per call; C measured in the same run)`);
for (const [name, ns] of Object.entries(ts)) {
  const base = c[name];
  console.log(
    `  ${name.padEnd(16)} ${ns.toFixed(1).padStart(8)} ns   C ${base.toFixed(1).padStart(8)} ns   ratio ${
      (ns / base).toFixed(2)
    }x`,
  );
}
if (sink === 42) console.log("");
