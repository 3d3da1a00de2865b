/**
 * `deno task test:vm [options]` runs the integration suite (tests/integration/*.test.ts) inside the test guest, one
 * boot per combination of mode {noiommu, iommu, iommufd} × runtime {deno, bun}, and prints one summary line each.
 * Exit status 0 only if every combination passed.
 */
import { readdirSync } from "node:fs";
import { parseArgs } from "node:util";
import { writeAllSync } from "../../lib/write_all.ts";
import {
  type DeviceSpec,
  ensureSetup,
  type Mode,
  MODES,
  parseDevices,
  qemuHasIgb,
  qemuVersion,
  REPO_DIR,
  type Runtime,
  RUNTIMES,
  runVm,
  shQuote,
  type VmResult,
} from "./rig.ts";

const USAGE = `usage: deno task test:vm [options]
options:
  --mode LIST       comma separated subset of noiommu,iommu,iommufd (default: all; repeatable)
  --runtime LIST    comma separated subset of deno,bun (default: both; repeatable)
  --filter TEXT     only test files whose name contains TEXT (comma separated alternatives; env VFIO_TS_VM_FILTER)
  --devices LIST    device list as for deno task vm (default: the default set)
  --timeout S       time limit per combination in seconds (default: 600)
  --memory SIZE     guest RAM (default: 2G)
  --iova-base ADDR  IOVA of the first DMA mapping (VFIO_TS_IOVA_BASE in the guest), e.g. 0x1000000000
  --ram-below-4g SIZE  RAM below 4 GiB (QEMU max-ram-below-4g); the rest is above, e.g. 512M with --memory 3G
  --high-dma        every DMA address past 4 GiB: --iova-base 0x1000000000 --ram-below-4g 512M --memory 3G, and
                    the tests check it (VFIO_TS_HIGH_DMA=1)
  --jobs N          combinations run in parallel (default: 1; output is then printed per combination)
  --verbose         echo the guest console (kernel log) to stderr
  --no-intremap     emulated IOMMU without interrupt remapping (VFIO refuses devices: tests that error)`;

interface Counts {
  passed: number | null;
  failed: number | null;
  skipped: number | null;
}

interface ComboResult extends Counts {
  mode: Mode;
  runtime: Runtime;
  ok: boolean;
  seconds: number;
  note: string;
  /** The tests' `SKIP: file: what: reason` lines (tests/skip.ts), once each. */
  skips: string[];
}

/** The distinct `SKIP: …` lines a run printed (tests/skip.ts prints one per skipped test or suite). */
export function skipLines(text: string): string[] {
  return [...new Set([...text.matchAll(/^SKIP: (.+)$/gm)].map((m) => m[1].trim()))];
}

function fail(msg: string): never {
  console.error(`test:vm: ${msg}\n${USAGE}`);
  Deno.exit(2);
}

function pickList<T extends string>(given: string[] | undefined, all: readonly T[], what: string): T[] {
  if (!given?.length) return [...all];
  const out = given.flatMap((g) => g.split(",")).map((s) => s.trim()).filter(Boolean);
  for (const x of out) if (!all.includes(x as T)) fail(`unknown ${what} "${x}"`);
  return all.filter((a) => out.includes(a));
}

/** Deno: "ok | 3 passed (3 steps) | 0 failed | 1 ignored (23ms)"; Bun: " 5 pass", " 0 fail", " 1 skip". */
export function parseCounts(runtime: Runtime, text: string): Counts {
  const num = (m: RegExpMatchArray | null | undefined, i = 1): number | null => (m ? Number(m[i]) : null);
  if (runtime === "deno") {
    const all = [
      ...text.matchAll(
        /(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed(?: \((?:\d+ steps?)\))?(?: \| (\d+) ignored)?/g,
      ),
    ];
    const m = all[all.length - 1];
    return { passed: num(m, 1), failed: num(m, 2), skipped: m ? Number(m[3] ?? 0) : null };
  }
  return {
    passed: num(text.match(/^\s*(\d+) pass$/m)),
    failed: num(text.match(/^\s*(\d+) fail$/m)),
    skipped: text.match(/^\s*(\d+) pass$/m) ? Number(text.match(/^\s*(\d+) skip$/m)?.[1] ?? 0) : null,
  };
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      strict: true,
      options: {
        "mode": { type: "string", multiple: true },
        "runtime": { type: "string", multiple: true },
        "filter": { type: "string" },
        "devices": { type: "string" },
        "timeout": { type: "string", default: "600" },
        "memory": { type: "string" },
        "iova-base": { type: "string" },
        "ram-below-4g": { type: "string" },
        "high-dma": { type: "boolean", default: false },
        "jobs": { type: "string", default: "1" },
        "verbose": { type: "boolean", default: false },
        "no-intremap": { type: "boolean", default: false },
        "help": { type: "boolean", short: "h", default: false },
      },
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const v = parsed.values;
  if (v.help) {
    console.log(`${USAGE}\nQEMU: ${await qemuVersion()} (tests/vm/setup.sh installs it from bookworm-backports)`);
    return 0;
  }
  const modes = pickList(v.mode, MODES, "mode");
  const runtimes = pickList(v.runtime, RUNTIMES, "runtime");
  const timeoutSec = Number(v.timeout);
  if (!(timeoutSec > 0)) fail(`bad --timeout ${v.timeout}`);
  const jobs = Number(v.jobs);
  if (!(jobs >= 1)) fail(`bad --jobs ${v.jobs}`);
  let devices: DeviceSpec[];
  try {
    devices = parseDevices(v.devices ?? "default", await qemuHasIgb());
  } catch (e) {
    fail((e as Error).message);
  }

  const high = v["high-dma"];
  const iovaBase = v["iova-base"] ?? (high ? "0x1000000000" : undefined);
  if (iovaBase !== undefined && !/^(0x[0-9a-f_]+|[0-9_]+)$/i.test(iovaBase)) fail(`bad --iova-base ${iovaBase}`);
  const ramBelow4g = v["ram-below-4g"] ?? (high ? "512M" : undefined);
  const memory = v.memory ?? (high ? "3G" : "2G");
  const guestEnv: Record<string, string> = {};
  if (iovaBase !== undefined) guestEnv.VFIO_TS_IOVA_BASE = iovaBase;
  if (high) guestEnv.VFIO_TS_HIGH_DMA = "1";

  const filter = (v.filter ?? Deno.env.get("VFIO_TS_VM_FILTER") ?? "").split(",").filter(Boolean);
  const files = readdirSync(`${REPO_DIR}/tests/integration`)
    .filter((f) => f.endsWith(".test.ts") && (!filter.length || filter.some((x) => f.includes(x))))
    .sort()
    .map((f) => `./tests/integration/${f}`);
  if (!files.length) fail(`no test files in tests/integration match "${filter.join(",")}"`);

  const t0 = performance.now();
  const kernel = await ensureSetup();
  const combos = modes.flatMap((mode) => runtimes.map((runtime) => ({ mode, runtime })));
  console.log(
    `test:vm: ${combos.length} combination(s), ${files.length} test file(s): ${
      files.map((f) => f.slice("./tests/integration/".length)).join(" ")
    }`,
  );

  const runOne = async (mode: Mode, runtime: Runtime): Promise<ComboResult> => {
    const header = `=== test:vm ${mode} × ${runtime} ===\n`;
    const chunks: Uint8Array[] = [];
    const dec = new TextDecoder();
    let text = "";
    const sink = (fd: number) => (b: Uint8Array): void => {
      text += dec.decode(b, { stream: true });
      if (jobs === 1) writeAllSync(fd, b);
      else chunks.push(b);
    };
    if (jobs === 1) writeAllSync(1, header);
    const cmd = runtime === "deno"
      ? `exec "$VFIO_TS_DENO" test -A --no-check ${files.map(shQuote).join(" ")}`
      : `exec "$VFIO_TS_BUN" test --timeout 300000 ${files.map(shQuote).join(" ")}`;
    const r: VmResult = await runVm({
      mode,
      runtime,
      devices,
      command: { sh: cmd },
      cwd: REPO_DIR,
      timeoutSec,
      memory,
      ramBelow4g,
      env: guestEnv,
      verbose: v.verbose,
      intremap: !v["no-intremap"],
      kernel,
      onStdout: sink(1),
      onStderr: sink(2),
    });
    if (jobs > 1) {
      writeAllSync(1, header);
      for (const c of chunks) writeAllSync(1, c);
    }
    const counts = parseCounts(runtime, text);
    let note = "";
    let ok = r.status === "ok" && r.exitCode === 0;
    if (r.status !== "ok") {
      note = r.status;
      console.error(`test:vm ${mode} × ${runtime}: ${r.status}: ${r.message}`);
    } else if (r.exitCode !== 0) note = `exit ${r.exitCode}`;
    if (ok && (counts.failed ?? 0) > 0) ok = false;
    if (ok && counts.passed === null) note = "no test summary found";
    if (r.boots > 1) note += `${note ? ", " : ""}booted twice`;
    return { mode, runtime, ok, seconds: r.wallMs / 1000, note, skips: skipLines(text), ...counts };
  };

  const results: ComboResult[] = new Array(combos.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(jobs, combos.length) }, async () => {
      while (next < combos.length) {
        const i = next++;
        results[i] = await runOne(combos[i].mode, combos[i].runtime);
      }
    }),
  );

  const n = (x: number | null): string => (x === null ? "?" : String(x));
  console.log("\n=== test:vm summary ===");
  for (const r of results) {
    console.log(
      `${r.ok ? "PASS" : "FAIL"}  ${r.mode.padEnd(8)} ${r.runtime.padEnd(5)} ${n(r.passed).padStart(4)} passed ${
        n(r.failed).padStart(3)
      } failed ${n(r.skipped).padStart(3)} skipped ${r.seconds.toFixed(1).padStart(6)} s${
        r.note ? `  (${r.note})` : ""
      }`,
    );
  }
  const skipped = new Map<string, string[]>();
  for (const r of results) {
    for (const line of r.skips) skipped.set(line, [...skipped.get(line) ?? [], `${r.mode}×${r.runtime}`]);
  }
  if (skipped.size) {
    console.log("skipped, and why:");
    for (const [line, where] of skipped) {
      console.log(`  ${line}  [${where.length === results.length ? "all" : where.join(" ")}]`);
    }
  }
  const okCount = results.filter((r) => r.ok).length;
  const sum = (k: keyof Counts): number => results.reduce((s, r) => s + (r[k] ?? 0), 0);
  console.log(
    `${okCount === results.length ? "PASS" : "FAIL"}  total: ${okCount}/${results.length} combinations passed, ${
      sum("passed")
    } passed, ${sum("failed")} failed, ${sum("skipped")} skipped, wall ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s`,
  );
  return okCount === results.length ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
