/**
 * `bench/irq_raise.ts` under Bun (loaded by a dynamic import only there).
 *
 * @module
 */
// @ts-ignore: `bun:ffi` exists only under Bun; Deno never loads this file.
import { dlopen, FFIType as T } from "bun:ffi";
import type { IrqRaiser } from "./irq_raise.ts";

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;

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
    irq_polled_ns: { args: [], returns: T.f64 },
  }).symbols as Record<string, Fn>;
  return {
    monoNs: () => s.irq_mono_ns(),
    gettid: () => s.irq_gettid(),
    start: (reg, value, waiter, minDelayUs, maxWaitUs) => {
      if (s.irq_raise_start(Number(reg), value, waiter, minDelayUs, maxWaitUs) !== 0) {
        throw new Error("cannot start the raiser thread");
      }
    },
    stampNs: () => s.irq_raise_stamp_ns(),
    confirmed: () => s.irq_raise_confirmed() === 1,
    done: () => s.irq_raise_done() === 1,
    blocker: () => s.irq_raise_blocker(),
    timedPoll: (fd, timeoutMs) => s.irq_timed_poll(fd, timeoutMs),
    polledNs: () => s.irq_polled_ns(),
  };
}
