/**
 * Builds `bench/c/bench_device.c` into a temporary shared object and binds it through the running runtime's FFI:
 * the C baselines of the host benchmarks run in the same process, on the same memory, as the TypeScript code.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The C side of the host benchmarks (see the C source for what each does). Addresses are bigints. */
export interface BenchNative {
  readNs(address: bigint, n: number): number;
  writeNs(address: bigint, n: number): number;
  startDelayedWriter(address: bigint, value: number, us: number): void;
  /** Starts a simulated NIC's device thread on the memory at `shm`; returns its handle for `nicStop`. */
  nicStart(shm: bigint): bigint;
  nicStop(shm: bigint, handle: bigint): void;
  /** One pass of the simulated device over the NIC at `shm` (instead of a device thread); descriptors moved. */
  nicStep(shm: bigint): number;
  /** The TSC frequency (Hz) measured over `ms` milliseconds; 0 where there is no TSC. */
  tscHz(ms: number): number;
  forward(shm: bigint, batch: number, packets: number): number;
  /** The C baseline of bench/scaling.ts: 1 or 2 C threads, each on its own NIC (device inline); Mpps of all. */
  scalingMpps(shm0: bigint, shm1: bigint, batch: number, packets: number, threads: number): number;
  pagemapNs(address: bigint, span: number, n: number): number;
  /** P4 in C: translate every page of `span` bytes at `address` once into a table; returns the cost in ns. */
  tableBuildNs(address: bigint, span: number): number;
  /** P4 in C: ns per bus-address lookup in that table. */
  tableLookupNs(span: number, n: number): number;
  /** CLOCK_MONOTONIC, ns. */
  monoNs(): number;
  /** When the last delayed writer stored its value (CLOCK_MONOTONIC ns). */
  delayedStampNs(): number;
  /** CPU time of the calling thread, ns. */
  threadCpuNs(): number;
  /** The round trip of a cache line between the process's first two CPUs, ns (fastest of `chunks` x 1000; 0: one CPU). */
  coreRoundTripNs(chunks: number): number;
  /** P3 on the host: a detached thread adds 1 to the eventfd `fd` after `us` µs (the stand-in for an interrupt). */
  startEventfdRaise(fd: number, us: number): void;
  /** When the last of those raises wrote (CLOCK_MONOTONIC ns; 0 if its write failed). */
  eventfdRaiseStampNs(): number;
  /** One wake-up of the C block design (raise, look, blocking read), ns; -1 on an error. */
  cWakeBlockNs(us: number): number;
  /** Starts the C hand-off design's waiter thread (then `cWakeHandoffNs`, and `handoffStop` at the end). */
  handoffStart(): void;
  /** One wake-up of the C hand-off design (waiter thread -> notify eventfd -> epoll_wait), ns; -1 on an error. */
  cWakeHandoffNs(us: number): number;
  /** Stops and joins the hand-off's waiter thread. */
  handoffStop(): void;
}

/** Compiles a C source of the benchmarks (`src`, relative to bench/) with gcc -O2 into a temporary shared object. */
export function buildBenchObject(src: string, name: string): string {
  const so = join(mkdtempSync(join(tmpdir(), "vfio-ts-bench-")), name);
  execFileSync("gcc", ["-O2", "-shared", "-fPIC", "-pthread", "-o", so, fileURLToPath(new URL(src, import.meta.url))]);
  return so;
}

/**
 * Under Bun, binds `so` with the `bind` of the bench module `path` (imported only there: a variable specifier keeps
 * Deno away from bun:ffi); null under Deno.
 */
export async function bindUnderBun<T>(path: string, so: string): Promise<T | null> {
  if (!("Bun" in globalThis)) return null;
  const m: { bind(so: string): T } = await import(path);
  return m.bind(so);
}

/** Compiles the C source with gcc -O2 (the same flags for every figure) and binds it. */
export async function loadBenchNative(): Promise<BenchNative> {
  const so = buildBenchObject("./c/bench_device.c", "libbench.so");
  const bun = await bindUnderBun<BenchNative>("./native_bun.ts", so);
  if (bun) return bun;
  const s = Deno.dlopen(so, {
    c_read_ns: { parameters: ["pointer", "u32"], result: "f64" },
    c_write_ns: { parameters: ["pointer", "u32"], result: "f64" },
    start_delayed_writer: { parameters: ["pointer", "u32", "u32"], result: "i32" },
    nic_start: { parameters: ["pointer"], result: "pointer" },
    nic_stop: { parameters: ["pointer", "pointer"], result: "void" },
    nic_step: { parameters: ["pointer"], result: "u32" },
    tsc_hz: { parameters: ["u32"], result: "f64" },
    c_forward: { parameters: ["pointer", "u32", "u32"], result: "f64" },
    c_scaling_mpps: { parameters: ["pointer", "pointer", "u32", "u32", "u32"], result: "f64" },
    c_pagemap_ns: { parameters: ["u64", "u32", "u32"], result: "f64" },
    thread_cpu_ns: { parameters: [], result: "f64" },
    mono_ns: { parameters: [], result: "f64" },
    delayed_stamp_ns: { parameters: [], result: "f64" },
    c_table_build_ns: { parameters: ["u64", "u32"], result: "f64" },
    c_table_lookup_ns: { parameters: ["u32", "u32"], result: "f64" },
    core_rt_ns: { parameters: ["u32"], result: "f64" },
    start_eventfd_raise: { parameters: ["i32", "u32"], result: "i32" },
    eventfd_raise_stamp_ns: { parameters: [], result: "f64" },
    c_wake_block_ns: { parameters: ["u32"], result: "f64" },
    c_handoff_start: { parameters: [], result: "i32" },
    c_wake_handoff_ns: { parameters: ["u32"], result: "f64" },
    c_handoff_stop: { parameters: [], result: "void" },
  }).symbols;
  const p = (a: bigint): Deno.PointerValue => Deno.UnsafePointer.create(a);
  let stepAt = -1n, stepPtr: Deno.PointerValue = null; // nicStep runs per batch: make its pointer once
  return {
    readNs: (a, n) => s.c_read_ns(p(a), n),
    writeNs: (a, n) => s.c_write_ns(p(a), n),
    startDelayedWriter: (a, v, us) => void s.start_delayed_writer(p(a), v, us),
    nicStart: (a) => {
      const h = s.nic_start(p(a));
      if (h === null) throw new Error("cannot start the simulated NIC thread");
      return Deno.UnsafePointer.value(h) as bigint;
    },
    nicStop: (a, h) => s.nic_stop(p(a), p(h)),
    nicStep: (a) => s.nic_step(a === stepAt ? stepPtr : (stepPtr = p(stepAt = a))),
    forward: (a, b, n) => s.c_forward(p(a), b, n),
    scalingMpps: (a0, a1, b, n, threads) => s.c_scaling_mpps(p(a0), p(a1), b, n, threads),
    ...pointerFreeCalls(s),
  };
}

/** The entry points that take no pointer (numbers and bigints only), bound the same way on both runtimes. */
type PointerFreeCalls = Omit<
  BenchNative,
  "readNs" | "writeNs" | "startDelayedWriter" | "nicStart" | "nicStop" | "nicStep" | "forward" | "scalingMpps"
>;

/** Both runtimes' bindings of the entry points that take no pointer: `s` holds the raw symbols. */
export function pointerFreeCalls(
  // deno-lint-ignore no-explicit-any
  s: Record<string, (...args: any[]) => any>,
): PointerFreeCalls {
  return {
    tscHz: (ms) => s.tsc_hz(ms),
    pagemapNs: (a, span, n) => s.c_pagemap_ns(a, span, n),
    threadCpuNs: () => s.thread_cpu_ns(),
    monoNs: () => s.mono_ns(),
    delayedStampNs: () => s.delayed_stamp_ns(),
    tableBuildNs: (a, span) => s.c_table_build_ns(a, span),
    tableLookupNs: (span, n) => s.c_table_lookup_ns(span, n),
    coreRoundTripNs: (chunks) => s.core_rt_ns(chunks),
    startEventfdRaise: (fd, us) => {
      if (s.start_eventfd_raise(fd, us) !== 0) throw new Error("cannot start the eventfd raiser thread");
    },
    eventfdRaiseStampNs: () => s.eventfd_raise_stamp_ns(),
    cWakeBlockNs: (us) => s.c_wake_block_ns(us),
    handoffStart: () => {
      if (s.c_handoff_start() !== 0) throw new Error("cannot start the C hand-off's waiter thread");
    },
    cWakeHandoffNs: (us) => s.c_wake_handoff_ns(us),
    handoffStop: () => s.c_handoff_stop(),
  };
}
