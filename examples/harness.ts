/**
 * What every example program shares: integer options with a range and a typed error, the ok/FAIL check list that
 * decides the exit status, and `--json` (one JSON object on stdout: the checks, the failures, the error if any;
 * the narrative goes to stderr then).
 *
 * ```ts
 * import { Checks, intOption, runChecks } from "./harness.ts";
 * const checks = new Checks({ json: false });
 * await runChecks("demo", checks, () => {
 *   checks.check(intOption("batch", "32", 1, 256) === 32, "batch parsed");
 * });
 * ```
 * @module
 */
import process from "node:process";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { VfioError } from "../mod.ts";

/** Parses `--name text` as an integer in `min..max`, or throws a `VfioError` saying the range. */
export function intOption(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new VfioError(`--${name} ${text} is out of range`, { remedy: `give an integer in ${min}..${max}` });
  }
  return n;
}

/** One check's outcome. */
export interface CheckResult {
  /** Whether it passed. */
  ok: boolean;
  /** What was checked. */
  what: string;
}

/** Options of {@linkcode Checks}. */
export interface ChecksOptions {
  /** Collect the checks for one JSON object at the end instead of printing each (`--json`). */
  json?: boolean;
}

/** The program's check list: each check printed as `ok` or `FAIL` (or kept for `--json`), failures counted. */
export class Checks {
  /** How many checks failed (a fatal error counts as one). */
  failures = 0;
  /** Every check so far, in order. */
  readonly results: CheckResult[] = [];
  /** Whether the list ends as one JSON object. */
  readonly json: boolean;

  /** An empty list. */
  constructor(options: ChecksOptions = {}) {
    this.json = options.json ?? false;
  }

  /** Records one check; prints it unless `json`. */
  check(ok: boolean, what: string): void {
    this.results.push({ ok, what });
    if (!this.json) console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
    if (!ok) this.failures++;
  }

  /** The closing line: how many checks failed, or that all passed. */
  summary(): string {
    return this.failures ? `${this.failures} check(s) failed` : "all checks passed";
  }
}

/**
 * Runs a program's `main`, then reports: the summary line (or, on a fatal error, `name: message` on stderr), or
 * with `checks.json` one JSON object `{ program, ok, failures, checks, error? }` on stdout while everything the
 * program logs goes to stderr. Sets the exit status: non-zero when a check failed or `main` threw.
 */
export async function runChecks(name: string, checks: Checks, main: () => Promise<void> | void): Promise<void> {
  const log = console.log;
  if (checks.json) console.log = console.error;
  let error: string | undefined;
  try {
    await main();
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
    checks.failures++;
  } finally {
    console.log = log;
  }
  if (checks.json) {
    const report = { program: name, ok: checks.failures === 0, failures: checks.failures, checks: checks.results };
    console.log(JSON.stringify(error === undefined ? report : { ...report, error }));
  } else if (error !== undefined) console.error(`${name}: ${error}`);
  else console.log(checks.summary());
  process.exitCode = checks.failures ? 1 : 0;
}

type ParseArgsOptionConfig = NonNullable<ParseArgsConfig["options"]>[string];
/** The values `parseArgs` gives for `options` (strings, booleans, or undefined when absent). */
export type ParsedValues<T extends Record<string, ParseArgsOptionConfig>> = {
  [K in keyof T]: T[K] extends { type: "boolean" } ? boolean | undefined
    : T[K] extends { default: string } ? string
    : string | undefined;
};

/**
 * The options the two-port NIC programs (`fwd.ts`, `pktgen.ts`) share: `--hugepages N`, `--queues N` (default 1),
 * `--interrupts`, `--busy` and `--noiommu`.
 */
export const NIC_PROGRAM_OPTIONS = {
  hugepages: { type: "string" },
  queues: { type: "string", default: "1" },
  interrupts: { type: "boolean" },
  busy: { type: "boolean" },
  noiommu: { type: "boolean" },
} as const;

/** The options every example program takes besides its own: `--json` and `--help`. */
const COMMON_OPTIONS = {
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/**
 * Parses the command line for a program with `options` plus `--json` and `--help` (which prints `usage` and
 * exits), and starts its check list (`--json` decides how it reports).
 *
 * ```ts ignore
 * const { values, positionals, checks } = programArgs(USAGE, { batch: { type: "string", default: "32" } });
 * ```
 */
export function programArgs<T extends Record<string, ParseArgsOptionConfig>>(
  usage: string,
  options: T,
): { values: ParsedValues<T & typeof COMMON_OPTIONS>; positionals: string[]; checks: Checks } {
  const parsed = parseArgs({ allowPositionals: true, options: { ...options, ...COMMON_OPTIONS } });
  const values = parsed.values as unknown as ParsedValues<T & typeof COMMON_OPTIONS>;
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  return { values, positionals: parsed.positionals, checks: new Checks({ json: values.json === true }) };
}
