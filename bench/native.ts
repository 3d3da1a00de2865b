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
  nicStart(shm: bigint): void;
  nicStop(shm: bigint): void;
  forward(shm: bigint, batch: number, packets: number): number;
  pagemapNs(address: bigint, span: number, n: number): number;
  /** CPU time of the calling thread, ns. */
  threadCpuNs(): number;
}

/** Compiles the C source with gcc -O2 (the same flags for every figure) and binds it. */
export async function loadBenchNative(): Promise<BenchNative> {
  const so = join(mkdtempSync(join(tmpdir(), "vfio-ts-bench-")), "libbench.so");
  const src = fileURLToPath(new URL("./c/bench_device.c", import.meta.url));
  execFileSync("gcc", ["-O2", "-shared", "-fPIC", "-pthread", "-o", so, src]);
  if ("Bun" in globalThis) {
    const path = "./native_bun.ts"; // a variable specifier keeps Deno away from bun:ffi
    const m: { bind(so: string): BenchNative } = await import(path);
    return m.bind(so);
  }
  const s = Deno.dlopen(so, {
    c_read_ns: { parameters: ["pointer", "u32"], result: "f64" },
    c_write_ns: { parameters: ["pointer", "u32"], result: "f64" },
    start_delayed_writer: { parameters: ["pointer", "u32", "u32"], result: "i32" },
    nic_start: { parameters: ["pointer"], result: "i32" },
    nic_stop: { parameters: ["pointer"], result: "void" },
    c_forward: { parameters: ["pointer", "u32", "u32"], result: "f64" },
    c_pagemap_ns: { parameters: ["u64", "u32", "u32"], result: "f64" },
    thread_cpu_ns: { parameters: [], result: "f64" },
  }).symbols;
  const p = (a: bigint): Deno.PointerValue => Deno.UnsafePointer.create(a);
  return {
    readNs: (a, n) => s.c_read_ns(p(a), n),
    writeNs: (a, n) => s.c_write_ns(p(a), n),
    startDelayedWriter: (a, v, us) => void s.start_delayed_writer(p(a), v, us),
    nicStart: (a) => void s.nic_start(p(a)),
    nicStop: (a) => s.nic_stop(p(a)),
    forward: (a, b, n) => s.c_forward(p(a), b, n),
    pagemapNs: (a, span, n) => s.c_pagemap_ns(a, span, n),
    threadCpuNs: () => s.thread_cpu_ns(),
  };
}
