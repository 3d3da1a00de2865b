/**
 * The command-line plumbing `pktgen.ts` and `fwd.ts` share: integer options with a range and a typed error, and
 * the ok/FAIL check list that decides the exit status.
 *
 * ```ts
 * import { Checks, intOption } from "./program.ts";
 * const batch = intOption("batch", "32", 1, 256);
 * const checks = new Checks();
 * checks.check(batch === 32, "batch parsed");
 * ```
 * @module
 */
import { VfioError } from "../../mod.ts";

/** Parses `--name text` as an integer in `min..max`, or throws a `VfioError` saying the range. */
export function intOption(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new VfioError(`--${name} ${text} is out of range`, { remedy: `give an integer in ${min}..${max}` });
  }
  return n;
}

/** Prints each check as `ok` or `FAIL` and counts the failures (the program's exit status). */
export class Checks {
  /** How many checks failed (also count a fatal error here). */
  failures = 0;

  /** Prints one check and counts it when it failed. */
  check(ok: boolean, what: string): void {
    console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
    if (!ok) this.failures++;
  }

  /** The closing line: how many checks failed, or that all passed. */
  summary(): string {
    return this.failures ? `${this.failures} check(s) failed` : "all checks passed";
  }
}
