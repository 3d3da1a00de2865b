/**
 * The whole benchmark suite, one command (`deno task bench`): every figure on Deno and on Bun, each beside its C
 * baseline measured in the same run, printed as one markdown table with the ratios and the goals of issue #8.
 * - P1 register access, P2 packet path, P4 address translation: `bench/host.ts` on each runtime;
 * - P3 interrupt latency: in the QEMU guest (edu, iommu mode), the C baseline and both runtimes in one boot; and the
 *   same two designs on the host CPU, woken by a thread's eventfd write (`bench/wake_native.ts`, also with --no-vm);
 * - P5 start-up: `bench/startup.ts` in fresh processes, beside a C program that dlopens libc and the helper;
 * - and the FFI call cost (`bench/ffi_cost.ts`) for reference.
 * Options: `--no-vm` skips P3 in the guest; `--quick` runs fewer repetitions; `--json FILE` also writes the raw
 * results.
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
import { latencyStats, pairedRatio, type Summary, summary } from "./stats.ts";

const { values: opts } = parseArgs({
  args: process.argv.slice(2),
  options: { "no-vm": { type: "boolean" }, quick: { type: "boolean" }, json: { type: "string" } },
});
const DENO = "node_modules/deno/deno", BUN = "node_modules/bun/bin/bun.exe";
const quick = opts.quick === true;
const env = {
  ...process.env,
  NO_COLOR: "1",
  ...(quick
    ? {
      BENCH_REPEAT: "2",
      BENCH_PACKETS: "200000",
      BENCH_P2_REPEAT: "3",
      BENCH_P2_PLACEMENT: "any",
      BENCH_SCALING_REPEAT: "1",
    }
    : {}),
};
const cwd = new URL("..", import.meta.url).pathname;
/** ixy's C forwarder on a real 82599 at batch 32, cycles per packet (the published anchor, as quoted in issue #15). */
const IXY_C_CYCLES = 98;

/** Runs a command (stderr shown as progress) and returns the JSON of every `RESULT` line of its stdout. */
function results(cmd: string, args: string[], extraEnv: Record<string, string> = {}): Record<string, unknown>[] {
  const r = spawnSync(cmd, args, {
    cwd,
    env: { ...env, ...extraEnv },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  const found = (r.stdout ?? "").split("\n").filter((l) => l.startsWith("RESULT ")).map((l) => JSON.parse(l.slice(7)));
  if (r.status !== 0 || found.length === 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}):\n${r.stdout}`);
  }
  return found;
}
/** Whole-process wall time (spawn -> exit) of a command, ms. */
const wall = (cmd: string, args: string[], extraEnv: Record<string, string> = {}): number => {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd, env: { ...env, ...extraEnv }, stdio: "ignore" });
  if (r.status !== 0) throw new Error(`${cmd} failed`);
  return performance.now() - t0;
};

// deno-lint-ignore no-explicit-any
type Any = any;
const all: Record<string, Any> = { schema: 2, quick };
console.error("=== FFI call cost (bench/ffi_cost.ts)");
for (const cmd of [[DENO, "run", "-A", "bench/ffi_cost.ts"], [BUN, "bench/ffi_cost.ts"]]) {
  console.error(execFileSync(cmd[0], cmd.slice(1), { cwd, env, encoding: "utf8" }).trimEnd());
}
console.error("=== P1, P2, P4 on the host (bench/host.ts)");
all.deno = results(DENO, ["run", "-A", "bench/host.ts"])[0];
all.bun = results(BUN, ["bench/host.ts"])[0];

console.error("=== Scaling: one worker per simulated queue pair, 1 and 2 (bench/scaling.ts)");
all.scaling = {
  deno: results(DENO, ["run", "-A", "bench/scaling.ts"])[0],
  bun: results(BUN, ["bench/scaling.ts"])[0],
};

console.error("=== P3 on the host CPU: wake-ups from a thread's eventfd write (bench/wake_native.ts)");
{
  const args = ["bench/wake_native.ts", ...(quick ? ["--quick"] : [])];
  all.p3_host = { deno: results(DENO, ["run", "-A", ...args])[0], bun: results(BUN, args)[0] };
}

console.error("=== P5 start-up (bench/startup.ts, fresh processes; the first run of each with empty caches)");
{
  const dir = mkdtempSync(join(tmpdir(), "vfio-ts-bench-"));
  const exe = join(dir, "startup"), helper = join(dir, "libvfio_ts_poll.so");
  execFileSync("gcc", ["-O2", "-o", exe, "bench/c/startup.c"], { cwd });
  writeFileSync(helper, embeddedHelper()!); // the C baseline dlopens the same object from a file
  const runs = quick ? 3 : 9;
  // Cold: a fresh clone's first run, i.e. Deno with an empty DENO_DIR (nothing transpiled yet), Bun with an empty
  // transpiler cache. Warm: the median of the runs after it.
  const cold = { DENO_DIR: join(dir, "deno-dir"), BUN_RUNTIME_TRANSPILER_CACHE_PATH: join(dir, "bun-cache") };
  const startup = (cmd: string, args: string[]): Record<string, number> => {
    const t0 = performance.now();
    const first = results(cmd, args, cold)[0].total_ms as number;
    const firstProcess = performance.now() - t0;
    const warm: number[] = [], warmProcess: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      warm.push(results(cmd, args, cold)[0].total_ms as number);
      warmProcess.push(performance.now() - t);
    }
    return {
      cold_ms: first,
      cold_process_ms: firstProcess,
      warm_ms: summary(warm).median,
      warm_process_ms: summary(warmProcess).median,
    };
  };
  all.p5 = {
    deno: startup(DENO, ["run", "-A", "bench/startup.ts"]),
    bun: startup(BUN, ["bench/startup.ts"]),
    c_process_ms: summary(Array.from({ length: runs }, () => wall(exe, [helper]))).median,
  };
}

if (!opts["no-vm"]) {
  // Each boot runs C, Deno and Bun in turn, `passes` times: the guest's speed drifts within a boot (the same C
  // program's p50 moves by 10-50% from one run to the next), so each pass's runtimes are compared with the C run
  // just before them (paired ratios, as P2), and each design's samples are also pooled per boot.
  // The guest CPU is "max,pku=off": with PKU, every WRPKRU V8 issues around its code-space writes flushes TCG's
  // whole emulated TLB, which no hardware does; one more boot with the rig's default CPU ("max") measures that cost.
  const boots = quick ? 1 : 3, passes = quick ? 1 : 5, rounds = quick ? 30 : 60;
  // Then the ring (bench/irq_ring.sh): C, Deno and Bun, each on its own edu, run `waitSync()`-design blocks of
  // `ringRounds` in turn, `ringBlocks` times, C once more: every runtime block lies between two C blocks measured
  // milliseconds away. `waitSync()`'s p50 goal is judged there: C's own p50 moved 2-3x between the passes of one boot,
  // seconds apart, more than the goal's margin.
  const ringBlocks = quick ? 2 : 21, ringRounds = quick ? 10 : 30; // the first cycle is not counted
  console.error(
    `=== P3 sleep -> wake in the guest (edu MSI, iommu mode; C, Deno, Bun in turn ${passes}× in each of ${boots} boots)`,
  );
  const pass = (n: number): string =>
    `/tmp/irq_guest \${VFIO_TS_EDU%%,*} ${n} && $VFIO_TS_DENO run -A bench/irq_guest.ts ${n} && ` +
    `$VFIO_TS_BUN bench/irq_guest.ts ${n}`;
  // A short pass first, not counted: the first run of each program in a fresh guest pages its code in from the host
  // share and fills the runtimes' caches (in the run before, Deno's first pass was 1.9-2.5x C in every boot).
  const cmd =
    `gcc -O2 -pthread -o /tmp/irq_guest bench/c/irq_guest.c bench/c/irq_raise.c && (${pass(10)}) >/dev/null && ` +
    Array(passes).fill(pass(rounds)).join(" && ");
  const boot = (cpu: string, rotation: number, order: "deno-first" | "bun-first"): Any => {
    // the device each program takes rotates, and which runtime follows C alternates
    const ring = `sh bench/irq_ring.sh ${ringRounds} ${ringBlocks} ${rotation} ${order}`;
    const devices = "edu,edu,edu";
    const args = ["run", "-A", "tests/vm/vm.ts", "--cpu", cpu, "--mode", "iommu", "--devices", devices, "--cmd"];
    const runs = results(DENO, [...args, `${cmd} && ${ring}`]);
    const of = (runtime: string): Any[] => runs.filter((r) => r.runtime === runtime && !r.ring);
    const ringOf = (runtime: string): Any => {
      const r: Any = runs.find((x) => x.runtime === runtime && x.ring)?.ring;
      if (!r || r.blocks.length !== ringBlocks + (runtime === "c" ? 1 : 0)) throw new Error(`P3: ${runtime} ring`);
      return r;
    };
    const [c, deno, bun] = [of("c"), of("deno"), of("bun")];
    if (deno.length !== c.length || bun.length !== c.length) throw new Error("P3: a runtime missed a pass");
    const p50 = (r: Any, design: string): number => r[design].p50_us;
    return {
      cpu,
      c: poolP3(c),
      deno: poolP3(deno),
      bun: poolP3(bun),
      // each pass's p50s: the C run and the runtimes' runs right after it
      passes: c.map((x, i) => ({
        c_block: p50(x, "block"),
        c_handoff: p50(x, "handoff"),
        deno_waitSync: p50(deno[i], "waitSync"),
        deno_wait: p50(deno[i], "wait"),
        bun_waitSync: p50(bun[i], "waitSync"),
        bun_wait: p50(bun[i], "wait"),
      })),
      ring: { order, ...ringResults(ringOf("c"), ringOf("deno"), ringOf("bun")) },
    };
  };
  all.p3 = { rounds: rounds * passes, passes, ring_blocks: ringBlocks, ring_rounds: ringRounds, boots: [] as Any[] };
  for (let b = 0; b < boots; b++) all.p3.boots.push(boot("max,pku=off", b % 3, b % 2 ? "bun-first" : "deno-first"));
  if (!quick) all.p3.pku_boot = boot("max", 0, "deno-first");
}

/**
 * One boot's ring: each block's p50 per program, the C reference of each runtime block (the geometric mean of the C
 * blocks before and after it), the pooled samples' figures and the dropped-sample counts. The first cycle (a block of
 * each) is not counted: it is each program's first wake-ups since it started (in a first try it was the slowest block
 * of all three programs).
 */
function ringResults(c: Any, deno: Any, bun: Any): Any {
  const p50s = (r: Any): number[] => r.blocks.slice(1).map((x: Any) => x.p50_us);
  const cp = p50s(c);
  const pooled = (r: Any): Any => {
    const samples: number[] = r.blocks.slice(1).flatMap((x: Any) => x.samples);
    return { ...latencyStats(samples), rounds: samples.length, unconfirmed: r.unconfirmed, immediate: r.immediate };
  };
  return {
    c_block: cp,
    c_between: cp.slice(0, -1).map((x, k) => Math.sqrt(x * cp[k + 1])),
    deno_waitSync: p50s(deno),
    bun_waitSync: p50s(bun),
    c: pooled(c),
    deno: pooled(deno),
    bun: pooled(bun),
  };
}

/**
 * One runtime's P3 results over several passes as one: each design's samples (and its traced parts) pooled, its
 * figures recomputed from them, its counts summed; the top-level counts summed.
 */
function poolP3(runs: Any[]): Any {
  if (runs.length === 0) throw new Error("P3: a runtime printed no result");
  const out: Any = { ...runs[0] };
  for (const [key, value] of Object.entries(runs[0])) {
    if (typeof value === "number") out[key] = runs.reduce((a, r) => a + r[key], 0);
    if (typeof value !== "object" || value === null || !("samples" in value)) continue;
    const pooled = (field: string): number[] => runs.flatMap((r) => r[key][field] ?? []);
    const design: Any = { ...value, ...latencyStats(pooled("samples")), samples: pooled("samples") };
    for (const n of ["rounds", "unconfirmed", "immediate"]) design[n] = runs.reduce((a, r) => a + r[key][n], 0);
    const why: Record<string, number> = {}; // each pass's reasons for its unconfirmed samples, summed
    for (const r of runs) {
      for (const [k, n] of Object.entries<number>(r[key].unconfirmed_why ?? {})) why[k] = (why[k] ?? 0) + n;
    }
    if (Object.keys(why).length) design.unconfirmed_why = why;
    if ("kernel_samples" in value) {
      const k = latencyStats(pooled("kernel_samples")), r = latencyStats(pooled("return_samples"));
      Object.assign(design, { kernel_p50_us: k.p50_us, kernel_mean_us: k.mean_us });
      Object.assign(design, { return_p50_us: r.p50_us, return_mean_us: r.mean_us });
      Object.assign(design, { kernel_samples: pooled("kernel_samples"), return_samples: pooled("return_samples") });
    }
    out[key] = design;
  }
  if ("block_kernel_p50_us" in out) out.block_kernel_p50_us = out.block.p50_us; // C: the read's return is the wake-up
  return out;
}

// the raw results first: a failure in the tables below loses nothing
if (opts.json) writeFileSync(opts.json, JSON.stringify(all, null, 2));

// ---------------------------------------------------------------- the tables
const d = all.deno, b = all.bun;
const f = (x: number, digits = 1): string => (x >= 100 ? x.toFixed(0) : x.toFixed(digits));
const yes = (ok: boolean): string => (ok ? "yes" : "**no**");
/** A paired-ratio summary as "median× [q1–q3]". */
const r3 = (r: Summary): string => `${r.median.toFixed(2)}× [${r.q1.toFixed(2)}–${r.q3.toFixed(2)}]`;
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
const P2_NAMES: Record<string, string> = {
  helper: "TS + C helper (`Poller.queue`: RX refill, TX post)",
  ts: "pure TS (`Atomics.load` per status)",
  ixyjs: "ixy.js design (`ixyjs`)",
};
for (const batch of ["1", "8", "32", "128", "256"]) {
  const db = d.p2.batches[batch], bb = b.p2.batches[batch];
  for (const v of ["helper", "ts", "ixyjs"]) {
    const goal = batch === "32" && v === "helper" ? "≤ 1.3× C (upper quartile)" : "";
    const met = goal ? yes(db.helper.ratio_to_c.q3 <= 1.3 && bb.helper.ratio_to_c.q3 <= 1.3) : "";
    rows.push([
      `P2 batch ${batch}: ${P2_NAMES[v]}`,
      `${f(db[v].ns.median)} ns`,
      `${f(bb[v].ns.median)} ns`,
      `${f(db.c.ns.median)} / ${f(bb.c.ns.median)} ns`,
      r3(db[v].ratio_to_c),
      r3(bb[v].ratio_to_c),
      goal,
      met,
    ]);
  }
}
{
  const db = d.p2.batches["32"], bb = b.p2.batches["32"];
  rows.push([
    "P2 batch 32: ixy.js design / TS + helper (how much faster)",
    r3(db.ixyjs_over_helper),
    r3(bb.ixyjs_over_helper),
    "",
    "",
    "",
    "≥ 4× (lower quartile)",
    yes(db.ixyjs_over_helper.q1 >= 4 && bb.ixyjs_over_helper.q1 >= 4),
  ]);
  rows.push([
    "P2 batch 32: ixy.js design / pure TS",
    r3(db.ixyjs_over_ts),
    r3(bb.ixyjs_over_ts),
    "",
    "",
    "",
    "",
    "",
  ]);
}
{
  const sd = all.scaling.deno, sb = all.scaling.bun;
  rows.push([
    "Scaling: 2 workers / 1 worker, packets per second (simulated NIC, device inline, batch 32, pure TS)",
    `${r3(sd.scaling)} (${f(sd.one.mpps.median)} → ${f(sd.two.mpps.median)} Mpps)`,
    `${r3(sb.scaling)} (${f(sb.one.mpps.median)} → ${f(sb.two.mpps.median)} Mpps)`,
    // The same forwarder in 1 and 2 C threads, beside each repetition (in the Deno process / the Bun process)
    sd.c ? `${r3(sd.c.scaling)} / ${r3(sb.c.scaling)}` : "",
    "",
    "",
    "≥ 1.8× on 2 cores (lower quartile)",
    yes(sd.scaling.q1 >= 1.8 && sb.scaling.q1 >= 1.8),
  ]);
  // Whether the window was clean: each worker's CPU time over its wall time, and the rest of the process's CPU.
  const clean = (x: Any): string =>
    `on a CPU ${x.one.on_cpu?.median.toFixed(2)} → ${x.two.on_cpu?.median.toFixed(2)}; other threads ${
      f(x.one.other_cpu_ms?.median)
    } → ${f(x.two.other_cpu_ms?.median)} ms`;
  rows.push([
    "Scaling: workers' share of the window on a CPU; other threads' CPU in it",
    clean(sd),
    clean(sb),
    "",
    "",
    "",
    "",
    "",
  ]);
  rows.push([
    "Scaling: busy cycles per packet per worker (driver + inline device), 1 worker → 2 workers",
    `${f(sd.one.cycles_per_packet.median)} → ${f(sd.two.cycles_per_packet.median)}`,
    `${f(sb.one.cycles_per_packet.median)} → ${f(sb.two.cycles_per_packet.median)}`,
    "",
    "",
    "",
    "",
    "",
  ]);
}
if (all.p3) {
  // p50: the median [quartiles] of the paired per-pass ratios over every pass of every boot, met when the upper
  // quartile meets the goal (P2's rule); p90, p99, mean: per boot over C's figure of the same boot, the median across
  // boots. Every row also gives the worst boot's ratio of the pooled samples.
  const boots: Any[] = all.p3.boots;
  const across = (pick: (boot: Any) => number): Summary => summary(boots.map(pick));
  const passes: Any[] = boots.flatMap((x) => x.passes);
  // goal null: judged on the ring (below), the passes' p50 row only reported
  const p3row = (name: string, v: "waitSync" | "wait", c: "block" | "handoff", goal: number | null): void => {
    for (const stat of ["p50_us", "p90_us", "p99_us", "mean_us"] as const) {
      const dv = across((x) => x.deno[v][stat]), bv = across((x) => x.bun[v][stat]), cv = across((x) => x.c[c][stat]);
      const worst = (rt: "deno" | "bun"): string =>
        Math.max(...boots.map((x) => x[rt][v][stat] / x.c[c][stat])).toFixed(2);
      const paired = stat === "p50_us";
      const ratio = (rt: "deno" | "bun"): Summary =>
        paired
          ? pairedRatio(passes.map((x) => x[`${rt}_${v}`]), passes.map((x) => x[`c_${c}`]))
          : across((x) => x[rt][v][stat] / x.c[c][stat]);
      const [dr, br] = [ratio("deno"), ratio("bun")];
      const text = (r: Summary, rt: "deno" | "bun"): string =>
        `${paired ? r3(r) : `${r.median.toFixed(2)}×`} (worst boot ${worst(rt)}×)`;
      const n = `${passes.length} pass${passes.length === 1 ? "" : "es"}`;
      const g = paired && goal !== null ? `≤ ${goal}× C (upper quartile, ${n})` : "";
      rows.push([
        `P3 sleep → wake, ${name}, ${stat === "mean_us" ? "mean" : stat.slice(0, 3)}${
          paired && goal === null ? " (separate runs in turn, paired per pass)" : ""
        }`,
        `${f(dv.median)} µs`,
        `${f(bv.median)} µs`,
        `${f(cv.median)} µs (${c})`,
        text(dr, "deno"),
        text(br, "bun"),
        g,
        g && goal !== null ? yes(dr.q3 <= goal && br.q3 <= goal) : "",
      ]);
    }
  };
  // waitSync()'s p50 goal, on the ring: every block of every boot, each over the C blocks on either side of it
  const rings: Any[] = boots.map((x) => x.ring);
  const ringRatio = (rt: "deno" | "bun"): Summary =>
    pairedRatio(rings.flatMap((x) => x[`${rt}_waitSync`]), rings.flatMap((x) => x.c_between));
  const [rd, rb] = [ringRatio("deno"), ringRatio("bun")];
  const pooledRing = (rt: "c" | "deno" | "bun", stat: "p50_us" | "p90_us" | "p99_us"): number =>
    summary(rings.map((x) => x[rt][stat])).median;
  const blocks = rd.n;
  rows.push([
    `P3 sleep → wake, \`waitSync()\` vs C blocking thread, p50, ring: C, Deno and Bun blocks of ${all.p3.ring_rounds} ` +
    `wake-ups in turn, each runtime block over the C blocks either side (p90 / p99 of the pooled samples after)`,
    `${f(pooledRing("deno", "p50_us"))} µs (${f(pooledRing("deno", "p90_us"))} / ${f(pooledRing("deno", "p99_us"))})`,
    `${f(pooledRing("bun", "p50_us"))} µs (${f(pooledRing("bun", "p90_us"))} / ${f(pooledRing("bun", "p99_us"))})`,
    `${f(pooledRing("c", "p50_us"))} µs (${f(pooledRing("c", "p90_us"))} / ${f(pooledRing("c", "p99_us"))}) (block)`,
    r3(rd),
    r3(rb),
    `≤ 1.3× C (upper quartile, ${blocks} blocks)`,
    yes(rd.q3 <= 1.3 && rb.q3 <= 1.3),
  ]);
  p3row("`waitSync()` vs C blocking thread", "waitSync", "block", null);
  p3row("`await wait()` vs C waiter-thread hand-off", "wait", "handoff", 1.2);
  const sum = (pick: (boot: Any) => number | undefined): string =>
    String(boots.reduce((a, x) => a + (pick(x) ?? 0), 0));
  for (
    const [name, key] of [
      ["P3 waits that found the interrupt already pending (dropped; must be 0)", "immediate"],
      ["P3 samples dropped: the raiser could not see every other task asleep within 200 ms", "unconfirmed"],
    ] as const
  ) {
    const c = sum((x) => x.c.block[key] + x.c.handoff[key]);
    rows.push([name, sum((x) => x.deno[key]), sum((x) => x.bun[key]), c, "", "", "", ""]);
  }
  for (
    const [v, name] of [
      ["waitSync_traced", "`waitSync()`"],
      ["wait_traced", "`await wait()`"],
      ["wait_threadsafe_probe", "a C poll thread + thread-safe callback (probe, Deno)"],
    ] as const
  ) {
    const part = (rt: "deno" | "bun"): string => {
      if (!boots[0][rt][v]) return "";
      const k = across((x) => x[rt][v].kernel_p50_us), r = across((x) => x[rt][v].return_p50_us);
      return `${f(k.median)} + ${f(r.median)} µs`;
    };
    rows.push([
      `P3 breakdown of ${name}, p50: raise → the wait's system call returns (stamped in C) + it returns → user code runs`,
      part("deno"),
      part("bun"),
      v === "waitSync_traced" && boots[0].c.block_kernel_p50_us !== undefined
        ? `${f(across((x) => x.c.block_kernel_p50_us).median)} + ${
          f(across((x) => x.c.block.p50_us - x.c.block_kernel_p50_us).median)
        } µs (block)`
        : "",
      "",
      "",
      "",
      "",
    ]);
  }
  if (boots[0].deno.wait_threadsafe_probe) {
    const p = across((x) => x.deno.wait_threadsafe_probe.p50_us);
    const ratio = across((x) => x.deno.wait_threadsafe_probe.p50_us / x.c.handoff.p50_us);
    rows.push([
      "P3 sleep → wake, probe: a C poll thread calling a thread-safe callback (Deno) vs C hand-off, p50",
      `${f(p.median)} µs`,
      "",
      `${f(across((x) => x.c.handoff.p50_us).median)} µs (handoff)`,
      `${ratio.median.toFixed(2)}×`,
      "",
      "",
      "",
    ]);
  }
  const pku: Any = all.p3.pku_boot;
  if (pku) {
    // the same boot with the rig's default CPU: QEMU emulates PKU, and V8 (not JavaScriptCore) uses it
    const pr = (rt: "deno" | "bun"): Summary =>
      pairedRatio(pku.passes.map((x: Any) => x[`${rt}_waitSync`]), pku.passes.map((x: Any) => x.c_block));
    const k = (rt: "deno" | "bun"): string =>
      `${f(pku[rt].waitSync_traced.kernel_p50_us)} + ${f(pku[rt].waitSync_traced.return_p50_us)} µs`;
    rows.push([
      "P3 `waitSync()` p50 in one boot with `-cpu max` (TCG emulates PKU: every WRPKRU flushes its TLB): " +
      "value, ratio, breakdown",
      `${f(pku.deno.waitSync.p50_us)} µs; ${r3(pr("deno"))}; ${k("deno")}`,
      `${f(pku.bun.waitSync.p50_us)} µs; ${r3(pr("bun"))}; ${k("bun")}`,
      `${f(pku.c.block.p50_us)} µs (block)`,
      "",
      "",
      "",
      "",
    ]);
  }
}
{
  // P3's two designs at the host CPU's speed (no device: a thread's eventfd write for the interrupt), per block of
  // rounds that alternate C and the runtime
  const h = all.p3_host;
  const hostRow = (v: "waitSync" | "wait", name: string, c: string, goal: number): void => {
    const [dr, br]: Summary[] = [h.deno[v].block_ratio, h.bun[v].block_ratio];
    const lat = (x: Any): string => `${f(x.p50_us)} µs (${f(x.p90_us)} / ${f(x.p99_us)})`;
    rows.push([
      `P3 on the host CPU, ${name}, p50 (p90 / p99), rounds alternating with C's, ratio per block of ${h.deno.block}`,
      lat(h.deno[v].runtime),
      lat(h.bun[v].runtime),
      `${lat(h.deno[v].c)} / ${f(h.bun[v].c.p50_us)} µs (${c})`,
      r3(dr),
      r3(br),
      `(≤ ${goal}× C on a real CPU, ${dr.n} blocks)`,
      yes(dr.q3 <= goal && br.q3 <= goal),
    ]);
  };
  hostRow("waitSync", "`waitSync()` vs C blocking read", "block", 1.3);
  hostRow("wait", "`await wait()` vs C waiter-thread hand-off", "handoff", 1.2);
}
if (d.p4 && b.p4) {
  row(
    "P4 bus address per buffer: `busAddress` vs the same table lookup in C",
    d.p4.lookup,
    b.p4.lookup,
    [d.p4.lookup_c, b.p4.lookup_c],
    "ns",
    "",
    "",
  );
  row(
    "P4 one-time translation per MiB (`NoiommuMapper.map`) vs C pagemap table build",
    d.p4.map_ms_per_mib,
    b.p4.map_ms_per_mib,
    [d.p4.map_c_ms_per_mib, b.p4.map_c_ms_per_mib],
    "ms",
    "",
    "",
  );
  rows.push([
    "P4 (scale) one pagemap `pread` per lookup in C, DPDK's `rte_mem_virt2phy` style",
    "",
    "",
    `${f(d.p4.pread_c)} / ${f(b.p4.pread_c)} ns`,
    `${(d.p4.pread_c / d.p4.lookup).toFixed(0)}× slower than busAddress`,
    `${(b.p4.pread_c / b.p4.lookup).toFixed(0)}× slower`,
    "",
    "",
  ]);
}
const p5 = all.p5;
rows.push([
  "P5 import `mod.ts` + bind libc + load helper, in process, warm (median)",
  `${f(p5.deno.warm_ms)} ms`,
  `${f(p5.bun.warm_ms)} ms`,
  "",
  "",
  "",
  "≤ 50 ms",
  yes(p5.deno.warm_ms <= 50 && p5.bun.warm_ms <= 50),
]);
rows.push([
  "P5 the same, cold (first run of a fresh clone: empty transpile caches)",
  `${f(p5.deno.cold_ms)} ms`,
  `${f(p5.bun.cold_ms)} ms`,
  "",
  "",
  "",
  "",
  "",
]);
row(
  "P5 whole process (spawn → exit), warm, vs C dlopen of libc + helper",
  p5.deno.warm_process_ms,
  p5.bun.warm_process_ms,
  p5.c_process_ms,
  "ms",
  "",
  "",
);
row("P5 whole process, cold", p5.deno.cold_process_ms, p5.bun.cold_process_ms, p5.c_process_ms, "ms", "", "");

const header = ["figure", "Deno", "Bun", "C (same run)", "Deno / C", "Bun / C", "goal", "met"];
const load = (() => {
  try {
    return execFileSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
})();
const hz = d.p2.tsc_hz || b.p2.tsc_hz;
all.machine = { cpus: cpus().length, model: cpus()[0]?.model ?? "?", load, date: new Date().toISOString(), tsc_hz: hz };
console.log(
  `\nvfio-ts benchmarks${quick ? " (--quick: too few repetitions to judge goals)" : ""}: ${cpus().length} × ${
    cpus()[0]?.model ?? "?"
  }, TSC ${(hz / 1e9).toFixed(2)} GHz, load average ${load}, ${all.machine.date}`,
);
console.log(
  `helper: ${
    d.helper && b.helper ? "loaded on both runtimes" : "NOT loaded"
  }; P2: ${d.p2.packets} packets per run, ${d.p2.repeats} interleaved repetitions, ratios are medians [quartiles] of per-repetition ratios`,
);
// P2's cost follows the cache-line round trip between the driver's and the device thread's CPUs (bench/host.ts).
const placed = (h: Any): string =>
  Object.entries(h.p2.batches).map(([k, v]: [string, Any]) => {
    const rt = summary(v.core_rt_ns?.flat() ?? []).median;
    return `${k}: ${v.placement ?? "?"} ${f(rt, 0)} ns × ${v.core_rt_ns?.length ?? "?"}`;
  }).join(", ");
console.log(`P2 CPU placement (cache-line round trip, repetitions counted): Deno ${placed(d)}; Bun ${placed(b)}\n`);
console.log(`| ${header.join(" | ")} |\n| ${header.map(() => "---").join(" | ")} |`);
for (const r of rows) console.log(`| ${r.join(" | ")} |`);

// P2 at batch 32 in the units ixy reports, with the overhead over C projected onto ixy's published C figure.
const p2Header = [
  "batch 32",
  "runtime",
  "ns/packet",
  "cycles/packet",
  "Mpps per core",
  "Δ vs C, cycles [quartiles]",
  `projected onto ixy's C (${IXY_C_CYCLES} cycles)`,
];
console.log(`\n| ${p2Header.join(" | ")} |\n| ${p2Header.map(() => "---").join(" | ")} |`);
for (const [rt, h] of [["Deno", d], ["Bun", b]] as const) {
  const r = h.p2.batches["32"];
  for (const v of ["c", "helper", "ts", "ixyjs"]) {
    const x = r[v], delta: Summary | null = x.delta_cycles;
    const proj = delta && v !== "c"
      ? `${f(IXY_C_CYCLES + delta.median)} cycles = ${((IXY_C_CYCLES + delta.median) / IXY_C_CYCLES).toFixed(2)}× ixy`
      : "";
    console.log(
      `| ${v === "c" ? "C" : P2_NAMES[v]} | ${rt} | ${f(x.ns.median)} | ${x.cycles === null ? "?" : f(x.cycles)} | ${
        f(x.mpps, 1)
      } | ${delta && v !== "c" ? `${f(delta.median)} [${f(delta.q1)}–${f(delta.q3)}]` : ""} | ${proj} |`,
    );
  }
}
