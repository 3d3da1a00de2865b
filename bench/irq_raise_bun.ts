/**
 * `bench/irq_raise.ts` under Bun (loaded by a dynamic import only there).
 *
 * @module
 */
// @ts-ignore: `bun:ffi` exists only under Bun; Deno never loads this file.
import { dlopen, FFIType as T, JSCallback } from "bun:ffi";
import { type IrqRaiser, type RawRaiser, wrapRaiser } from "./irq_raise.ts";

/** Binds the built shared object. */
export function bind(so: string): IrqRaiser {
  const s = dlopen(so, {
    irq_mono_ns: { args: [], returns: T.f64 },
    irq_gettid: { args: [], returns: T.i32 },
    irq_raise_start: { args: [T.ptr, T.u32, T.i32, T.u32, T.u32], returns: T.i32 },
    irq_raise_stamp_ns: { args: [], returns: T.f64 },
    irq_raise_confirmed: { args: [], returns: T.i32 },
    irq_raise_done: { args: [], returns: T.i32 },
    irq_raise_blocker: { args: [], returns: T.i32 },
    irq_timed_poll: { args: [T.i32, T.i32], returns: T.i32 },
    irq_timed_read: { args: [T.i32, T.ptr, T.u32], returns: T.i32 },
    irq_polled_ns: { args: [], returns: T.f64 },
    irq_waiter_start: { args: [T.i32, T.i32, T.ptr], returns: T.i32 },
    irq_waiter_join: { args: [], returns: T.void },
  }).symbols as RawRaiser;
  return wrapRaiser(s, Number, (fn) => {
    const cb = new JSCallback(fn, { args: [T.f64], returns: T.void, threadsafe: true });
    return { pointer: cb.ptr, close: () => cb.close() };
  });
}
