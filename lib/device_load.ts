/**
 * One load of memory a device writes behind the program's back (DMA descriptors, completion entries, used rings, BAR
 * registers): the JIT may neither hoist it out of a polling loop nor turn it into a write.
 *
 * A plain typed-array load is not enough: Bun's JIT (JavaScriptCore) hoists it out of a loop that does not write
 * memory, so the loop spins on a stale value. `Atomics.load` is not hoisted, but JavaScriptCore's optimising tiers
 * compile it to a locked read-modify-write (`lock xadd` of 0): the load *writes* the word back. That faults on a
 * read-only mapping, writes registers it only meant to read, and races with the device: where the CPU does not
 * perform the locked instruction atomically against device writes (QEMU's TCG with one vCPU emulates it as load, add,
 * store), a completion the device posts between the load and the store is overwritten with the old value and
 * never seen. So under Bun a load is a sequentially consistent store to a private word (which the JIT treats as
 * clobbering all memory: nothing is hoisted across it) followed by a plain load; under Deno it is `Atomics.load`,
 * which V8 compiles to a plain load.
 *
 * ```ts
 * import { deviceLoad } from "@vfio-ts/vfio";
 * const ring = new Uint32Array(64); // stands for a mapping the device writes
 * let spins = 0;
 * while ((deviceLoad(ring, 3) & 1) === 0 && spins < 1000) spins++; // sees the device's write, writes nothing
 * ```
 * @module
 */

/** Whether the JIT is JavaScriptCore's (Bun). */
const JSC = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
/** The private word the fence stores to. */
const FENCE = new Int32Array(1);

/**
 * Loads `array[index]` once, as the device last wrote it: never hoisted out of a loop, never a write to `array`
 * (see the module note for why `Atomics.load` is not used under Bun). The caller checks `index`; out of range it reads
 * `undefined` under Bun and throws `RangeError` under Deno.
 *
 * ```ts
 * import { deviceLoad } from "@vfio-ts/vfio";
 * const status = new Uint16Array(8);
 * deviceLoad(status, 7) & 1; // a phase tag
 * ```
 */
export function deviceLoad(array: Uint8Array | Uint16Array | Uint32Array, index: number): number;
/** The same for a 64-bit word (one 8-byte load). */
export function deviceLoad(array: BigUint64Array, index: number): bigint;
export function deviceLoad(
  array: Uint8Array | Uint16Array | Uint32Array | BigUint64Array,
  index: number,
): number | bigint {
  if (JSC) {
    Atomics.store(FENCE, 0, 0);
    return array[index];
  }
  return Atomics.load(array as Uint32Array, index); // one signature for the four kinds (V8: a plain load)
}
