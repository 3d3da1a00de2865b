/**
 * Builds `bench/c/irq_raise.c` (P3's interrupt raiser, the same code the C baselines link) into a temporary shared
 * object and binds it through the running runtime's FFI. See the C source for what each function does.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The raiser and the clocks P3 reads. Addresses are bigints. */
export interface IrqRaiser {
  /** CLOCK_MONOTONIC, ns (the raiser's clock). */
  monoNs(): number;
  /** The calling thread's id. */
  gettid(): number;
  /** Starts a raiser thread: writes `value` at `reg` once every thread is asleep and `waiter` is in a wait. */
  start(reg: bigint, value: number, waiter: number, minDelayUs: number, maxWaitUs: number): void;
  /** When the last raise wrote the register (CLOCK_MONOTONIC ns). */
  stampNs(): number;
  /** Whether the last raise saw every thread asleep and the waiter in a wait syscall. */
  confirmed(): boolean;
  /** Why the last raise could not confirm: a thread's state letter, or 'W' + (syscall << 8); 0 when it did. */
  blocker(): number;
  /** Whether the last raise has written the register. */
  done(): boolean;
  /** poll(2) on one fd for POLLIN, stamping the clock as it returns (`polledNs`). */
  timedPoll(fd: number, timeoutMs: number): number;
  /** The same on Deno's FFI thread pool (a `nonblocking` call, as the library's async wait makes); Deno only. */
  timedPollAsync?(fd: number, timeoutMs: number): Promise<number>;
  /** When the last `timedPoll` returned (CLOCK_MONOTONIC ns). */
  polledNs(): number;
}

/** Compiles the raiser with gcc -O2 and binds it. */
export async function loadIrqRaiser(): Promise<IrqRaiser> {
  const so = join(mkdtempSync(join(tmpdir(), "vfio-ts-bench-")), "libirq_raise.so");
  const src = fileURLToPath(new URL("./c/irq_raise.c", import.meta.url));
  execFileSync("gcc", ["-O2", "-shared", "-fPIC", "-pthread", "-o", so, src]);
  if ("Bun" in globalThis) {
    const path = "./irq_raise_bun.ts"; // a variable specifier keeps Deno away from bun:ffi
    const m: { bind(so: string): IrqRaiser } = await import(path);
    return m.bind(so);
  }
  const s = Deno.dlopen(so, {
    irq_mono_ns: { parameters: [], result: "f64" },
    irq_gettid: { parameters: [], result: "i32" },
    irq_raise_start: { parameters: ["pointer", "u32", "i32", "u32", "u32"], result: "i32" },
    irq_raise_stamp_ns: { parameters: [], result: "f64" },
    irq_raise_confirmed: { parameters: [], result: "i32" },
    irq_raise_done: { parameters: [], result: "i32" },
    irq_raise_blocker: { parameters: [], result: "i32" },
    irq_timed_poll: { parameters: ["i32", "i32"], result: "i32" },
    irq_timed_poll_async: { name: "irq_timed_poll", parameters: ["i32", "i32"], result: "i32", nonblocking: true },
    irq_polled_ns: { parameters: [], result: "f64" },
  }).symbols;
  return {
    monoNs: () => s.irq_mono_ns(),
    gettid: () => s.irq_gettid(),
    start: (reg, value, waiter, minDelayUs, maxWaitUs) => {
      if (s.irq_raise_start(Deno.UnsafePointer.create(reg), value, waiter, minDelayUs, maxWaitUs) !== 0) {
        throw new Error("cannot start the raiser thread");
      }
    },
    stampNs: () => s.irq_raise_stamp_ns(),
    confirmed: () => s.irq_raise_confirmed() === 1,
    done: () => s.irq_raise_done() === 1,
    blocker: () => s.irq_raise_blocker(),
    timedPoll: (fd, timeoutMs) => s.irq_timed_poll(fd, timeoutMs),
    timedPollAsync: (fd, timeoutMs) => s.irq_timed_poll_async(fd, timeoutMs),
    polledNs: () => s.irq_polled_ns(),
  };
}
