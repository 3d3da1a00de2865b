/**
 * `bench/native.ts` under Bun (loaded by a dynamic import only there).
 *
 * @module
 */
// @ts-ignore: `bun:ffi` exists only under Bun; Deno never loads this file.
import { dlopen, FFIType as T } from "bun:ffi";
import { type BenchNative, pointerFreeCalls } from "./native.ts";

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;

/** Binds the built shared object. */
export function bind(so: string): BenchNative {
  const s = dlopen(so, {
    c_read_ns: { args: [T.ptr, T.u32], returns: T.f64 },
    c_write_ns: { args: [T.ptr, T.u32], returns: T.f64 },
    start_delayed_writer: { args: [T.ptr, T.u32, T.u32], returns: T.i32 },
    nic_start: { args: [T.ptr], returns: T.u64 },
    nic_stop: { args: [T.ptr, T.u64], returns: T.void },
    nic_step: { args: [T.ptr], returns: T.u32 },
    tsc_hz: { args: [T.u32], returns: T.f64 },
    c_forward: { args: [T.ptr, T.u32, T.u32], returns: T.f64 },
    c_scaling_mpps: { args: [T.ptr, T.ptr, T.u32, T.u32, T.u32], returns: T.f64 },
    c_pagemap_ns: { args: [T.u64, T.u32, T.u32], returns: T.f64 },
    thread_cpu_ns: { args: [], returns: T.f64 },
    mono_ns: { args: [], returns: T.f64 },
    delayed_stamp_ns: { args: [], returns: T.f64 },
    c_table_build_ns: { args: [T.u64, T.u32], returns: T.f64 },
    c_table_lookup_ns: { args: [T.u32, T.u32], returns: T.f64 },
    core_rt_ns: { args: [T.u32], returns: T.f64 },
    start_eventfd_raise: { args: [T.i32, T.u32], returns: T.i32 },
    eventfd_raise_stamp_ns: { args: [], returns: T.f64 },
    c_wake_block_ns: { args: [T.u32], returns: T.f64 },
    c_handoff_start: { args: [], returns: T.i32 },
    c_wake_handoff_ns: { args: [T.u32], returns: T.f64 },
    c_handoff_stop: { args: [], returns: T.void },
  }).symbols as Record<string, Fn>;
  const p = (a: bigint): number => Number(a);
  return {
    readNs: (a, n) => s.c_read_ns(p(a), n),
    writeNs: (a, n) => s.c_write_ns(p(a), n),
    startDelayedWriter: (a, v, us) => void s.start_delayed_writer(p(a), v, us),
    nicStart: (a) => {
      const h = BigInt(s.nic_start(p(a)));
      if (h === 0n) throw new Error("cannot start the simulated NIC thread");
      return h;
    },
    nicStop: (a, h) => s.nic_stop(p(a), h),
    nicStep: (a) => s.nic_step(p(a)),
    forward: (a, b, n) => s.c_forward(p(a), b, n),
    scalingMpps: (a0, a1, b, n, threads) => s.c_scaling_mpps(p(a0), p(a1), b, n, threads),
    ...pointerFreeCalls(s),
  };
}
