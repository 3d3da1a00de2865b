/**
 * The busy-poll C helper (`ffi/poll_helper.c`), loaded through the running runtime's FFI from the prebuilt
 * `ffi/prebuilt/linux-<arch>/libvfio_ts_poll.so` (x86_64, aarch64). Address-level and **unsafe**: it reads
 * whatever memory it is given. Library code uses it through `lib/poll.ts` (`Poller`, `spinUntil`), which checks
 * bounds and use-after-close and falls back to an `Atomics.load` loop when the helper is unavailable.
 *
 * `VFIO_TS_POLL_HELPER=off` disables the helper (pure TypeScript everywhere); `VFIO_TS_POLL_HELPER=<path>` loads
 * another build of it. Rebuild the prebuilt objects with `deno task build:helper`.
 *
 * ```ts
 * import { pollHelper } from "./poll_helper.ts";
 * if (pollHelper.native) console.log("C poll helper from", pollHelper.path);
 * else console.log("pure TypeScript polling:", pollHelper.reason);
 * ```
 *
 * @module
 */
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { UnsupportedError } from "../lib/errors.ts";

/** The helper ABI version this loader speaks (`vfio_ts_poll_abi()` in the C source). */
export const POLL_HELPER_ABI = 1;

/** An address prepared for the helper (a cached pointer object under Deno, a number under Bun). Opaque. */
export type PollBase = { readonly __pollBase: unique symbol } | number;

/** The bound helper functions. Every call is **unsafe**: nothing checks that the memory is mapped. */
export interface NativePollHelper {
  /** Prepares `address` for the calls below; make it once per mapping (it allocates under Deno). */
  base(address: bigint): PollBase;
  /** Reads the u32 at base + offset until `(v & mask) === want` or `maxSpins` reads; returns the last value. */
  spin32(base: PollBase, offset: number, mask: number, want: number, maxSpins: number): number;
  /** The same on a u64 (one 8-byte load per read). */
  spin64(base: PollBase, offset: number, mask: bigint, want: bigint, maxSpins: number): bigint;
  /**
   * Spins on descriptor `head` of a ring (status u32 at `base + statusOffset + i * stride`) until done, then
   * counts consecutive done descriptors (wrapping at `ringSize`, at most `budget`); 0 if none within `maxSpins`.
   */
  ringReady(
    base: PollBase,
    stride: number,
    statusOffset: number,
    ringSize: number,
    head: number,
    mask: number,
    want: number,
    budget: number,
    maxSpins: number,
  ): number;
  /** Orders earlier stores before later ones (descriptors before a doorbell); a no-op on x86-64. */
  ioWmb(): void;
}

/** The helper as loaded (or not) in this process. */
export interface PollHelper {
  /** True when the C helper is loaded. */
  readonly native: boolean;
  /** The shared object that was loaded (or looked for). */
  readonly path: string;
  /** Why the helper is not loaded (null when it is). */
  readonly reason: string | null;
  /** The bound functions, or null. */
  readonly functions: NativePollHelper | null;
}

/** The prebuilt objects' folders, by Node-style (`process.arch`) and kernel-style architecture names. */
const PREBUILT_DIRS: Readonly<Record<string, string>> = {
  x64: "linux-x86_64",
  x86_64: "linux-x86_64",
  arm64: "linux-aarch64",
  aarch64: "linux-aarch64",
};

/** The prebuilt object for this machine's architecture. */
export function prebuiltHelperPath(arch: string = process.arch): string {
  const dir = PREBUILT_DIRS[arch] ?? `linux-${arch}`;
  return fileURLToPath(new URL(`./prebuilt/${dir}/libvfio_ts_poll.so`, import.meta.url));
}

async function load(): Promise<PollHelper> {
  const setting = process.env.VFIO_TS_POLL_HELPER ?? "";
  const path = setting && setting !== "off" ? setting : prebuiltHelperPath();
  if (setting === "off") return { native: false, path, reason: "disabled by VFIO_TS_POLL_HELPER=off", functions: null };
  if (process.platform !== "linux" || !existsSync(path)) {
    return {
      native: false,
      path,
      reason: `no helper at ${path} (${process.platform}/${process.arch}; run deno task build:helper)`,
      functions: null,
    };
  }
  try {
    let functions: NativePollHelper;
    if ("Bun" in globalThis) {
      // A variable specifier keeps Deno's type checker and module loader away from `bun:ffi`.
      const backend = "./poll_helper_bun.ts";
      const m: { bind(path: string, abi: number): NativePollHelper } = await import(backend);
      functions = m.bind(path, POLL_HELPER_ABI);
    } else {
      const m = await import("./poll_helper_deno.ts");
      functions = m.bind(path, POLL_HELPER_ABI);
    }
    return { native: true, path, reason: null, functions };
  } catch (e) {
    return { native: false, path, reason: `cannot load ${path}: ${(e as Error).message}`, functions: null };
  }
}

/** The process-wide helper, loaded once at import time. */
export const pollHelper: PollHelper = await load();

/**
 * The bound helper, or an `UnsupportedError` saying why it is missing and how to get it.
 *
 * ```ts
 * import { requirePollHelper } from "./poll_helper.ts";
 * const c = requirePollHelper();
 * ```
 */
export function requirePollHelper(): NativePollHelper {
  if (pollHelper.functions) return pollHelper.functions;
  throw new UnsupportedError(`the C poll helper is not loaded: ${pollHelper.reason}`, {
    remedy: "run `deno task build:helper` (needs gcc), or unset VFIO_TS_POLL_HELPER",
  });
}
