/**
 * The example harness under its former name: `pktgen.ts`, `fwd.ts` and the NIC programs may import it from here.
 *
 * ```ts
 * import { Checks, intOption } from "./program.ts";
 * const checks = new Checks();
 * checks.check(intOption("batch", "32", 1, 256) === 32, "batch parsed");
 * ```
 * @module
 */
export { type CheckResult, Checks, type ChecksOptions, intOption, runChecks } from "../harness.ts";
