/**
 * P5: start-up cost, measured inside a fresh process: importing the library (`mod.ts`) and binding libc, then
 * loading the C poll helper (both are bound on first use, so both are forced here). Prints `RESULT {json}` (milliseconds). `bench/all.ts` runs it in fresh processes on
 * both runtimes beside a C program that dlopens libc and the helper.
 *
 * @module
 */
const t0 = performance.now();
const { pollHelperStatus } = await import("../mod.ts");
const { libc } = await import("../ffi/libc.ts");
void libc.pageSize; // binds libc
const t1 = performance.now();
const helper = pollHelperStatus();
const t2 = performance.now();
if (!helper.native) throw new Error(`helper not loaded: ${helper.reason}`);
console.log(
  "RESULT " + JSON.stringify({ import_ms: t1 - t0, helper_ms: t2 - t1, total_ms: t2 - t0, since_start_ms: t2 }),
);
