/**
 * Skips that say why: `node:test` under Deno prints "ignored" and Bun "(skip)" without the reason. Passing a test's
 * `skip` value through {@linkcode skipBecause} prints `SKIP: <file>: <what>: <reason>` once, at definition, on both
 * runtimes; `tests/vm/test_vm.ts` collects those lines into its summary.
 *
 * ```ts
 * import { skipBecause } from "./skip.ts";
 * // it("reads pagemap", { skip: skipBecause(!root && "needs root", "reads pagemap") }, () => {});
 * ```
 * @module
 */

/** The test file that called, from the stack (both runtimes name it), for the SKIP line. */
function callerFile(): string {
  const stack = new Error().stack ?? "";
  const m = stack.match(/([\w.-]+\.test\.ts)/);
  return m ? m[1] : "?";
}

/**
 * Returns `reason` as a `skip` value (a string, or `false` to run) and prints the reason when it skips. `true`
 * (a skip without a reason) is refused: every skip must say why.
 */
export function skipBecause(reason: string | false | null | undefined | 0 | "", what = ""): string | false {
  if (!reason) return false;
  console.log(`SKIP: ${callerFile()}: ${what ? `${what}: ` : ""}${reason}`);
  return reason;
}
