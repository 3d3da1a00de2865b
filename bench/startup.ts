/**
 * P5: start-up cost, measured inside a fresh process: importing the library (`mod.ts`, which binds libc) and
 * loading the C poll helper. Prints `RESULT {json}` (milliseconds). `bench/all.ts` runs it in fresh processes on
 * both runtimes beside a C program that dlopens libc and the helper.
 *
 * @module
 */
const t0 = performance.now();
await import("../mod.ts");
const t1 = performance.now();
const { pollHelper } = await import("../ffi/poll_helper.ts");
const t2 = performance.now();
if (!pollHelper.native) throw new Error(`helper not loaded: ${pollHelper.reason}`);
console.log(
  "RESULT " + JSON.stringify({ import_ms: t1 - t0, helper_ms: t2 - t1, total_ms: t2 - t0, since_start_ms: t2 }),
);
