/**
 * Builds `bench/c/irq_raise.c` (P3's interrupt raiser, the same code the C baselines link) into a temporary shared
 * object and binds it through the running runtime's FFI. See the C source for what each function does.
 *
 * @module
 */
import { bindUnderBun, buildBenchObject } from "./native.ts";

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
  /** read(2) into `buf`, stamping the clock as it returns (`polledNs`); read's result. */
  timedRead(fd: number, buf: Uint8Array): number;
  /** The same on Deno's FFI thread pool (a `nonblocking` call, as the library's async wait makes); Deno only. */
  timedPollAsync?(fd: number, timeoutMs: number): Promise<number>;
  /**
   * The thread-safe-callback probe: a C thread sleeps in poll(2) on `fd`, reads it, stamps `polledNs` and calls
   * `onCount` with the count through the runtime's thread-safe callback. Write the eventfd `stop`, then await the
   * returned function, which joins the thread (off the JS thread: the C thread may be inside a callback call that
   * the JS thread must finish first) and releases the callback.
   */
  waiterStart(fd: number, stop: number, onCount: (count: number) => void): () => Promise<void>;
  /** When the last `timedPoll` returned (CLOCK_MONOTONIC ns). */
  polledNs(): number;
}

/** The raw symbols of the shared object, as both runtimes' FFI bind them. */
// deno-lint-ignore no-explicit-any
export type RawRaiser = Record<string, (...args: any[]) => any>;

/**
 * The runtime-independent half of the binding: `s` are the raw symbols, `ptr` makes a pointer argument of an
 * address, `callback` a thread-safe callback (its function pointer and how to release it).
 */
export function wrapRaiser(
  s: RawRaiser,
  ptr: (address: bigint) => unknown,
  callback: (fn: (count: number) => void) => { pointer: unknown; close(): void },
  timedPollAsync?: (fd: number, timeoutMs: number) => Promise<number>,
  joinAsync: () => Promise<void> = () => Promise.resolve(s.irq_waiter_join()),
): IrqRaiser {
  return {
    monoNs: () => s.irq_mono_ns(),
    gettid: () => s.irq_gettid(),
    start: (reg, value, waiter, minDelayUs, maxWaitUs) => {
      if (s.irq_raise_start(ptr(reg), value, waiter, minDelayUs, maxWaitUs) !== 0) {
        throw new Error("cannot start the raiser thread");
      }
    },
    stampNs: () => s.irq_raise_stamp_ns(),
    confirmed: () => s.irq_raise_confirmed() === 1,
    done: () => s.irq_raise_done() === 1,
    blocker: () => s.irq_raise_blocker(),
    timedPoll: (fd, timeoutMs) => s.irq_timed_poll(fd, timeoutMs),
    timedRead: (fd, buf) => s.irq_timed_read(fd, buf, buf.byteLength),
    timedPollAsync,
    polledNs: () => s.irq_polled_ns(),
    waiterStart: (fd, stop, onCount) => {
      const cb = callback(onCount);
      if (s.irq_waiter_start(fd, stop, cb.pointer) !== 0) {
        cb.close();
        throw new Error("cannot start the waiter thread");
      }
      return async () => {
        await joinAsync();
        cb.close();
      };
    },
  };
}

/** Compiles the raiser with gcc -O2 and binds it. */
export async function loadIrqRaiser(): Promise<IrqRaiser> {
  const so = buildBenchObject("./c/irq_raise.c", "libirq_raise.so");
  const bun = await bindUnderBun<IrqRaiser>("./irq_raise_bun.ts", so);
  if (bun) return bun;
  const s = Deno.dlopen(so, {
    irq_mono_ns: { parameters: [], result: "f64" },
    irq_gettid: { parameters: [], result: "i32" },
    irq_raise_start: { parameters: ["pointer", "u32", "i32", "u32", "u32"], result: "i32" },
    irq_raise_stamp_ns: { parameters: [], result: "f64" },
    irq_raise_confirmed: { parameters: [], result: "i32" },
    irq_raise_done: { parameters: [], result: "i32" },
    irq_raise_blocker: { parameters: [], result: "i32" },
    irq_timed_poll: { parameters: ["i32", "i32"], result: "i32" },
    irq_timed_read: { parameters: ["i32", "buffer", "u32"], result: "i32" },
    irq_timed_poll_async: { name: "irq_timed_poll", parameters: ["i32", "i32"], result: "i32", nonblocking: true },
    irq_polled_ns: { parameters: [], result: "f64" },
    irq_waiter_start: { parameters: ["i32", "i32", "function"], result: "i32" },
    irq_waiter_join: { parameters: [], result: "void", nonblocking: true },
  }).symbols;
  return wrapRaiser(
    s as unknown as RawRaiser,
    (reg) => Deno.UnsafePointer.create(reg),
    (fn) => Deno.UnsafeCallback.threadSafe({ parameters: ["f64"], result: "void" } as const, fn),
    (fd, timeoutMs) => s.irq_timed_poll_async(fd, timeoutMs),
    () => s.irq_waiter_join(),
  );
}
