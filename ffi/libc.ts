/**
 * The process-wide libc facade, picked once at load time: `ffi/deno.ts` under Deno, `ffi/bun.ts` under Bun.
 *
 * ```ts
 * import { libc } from "./libc.ts";
 * console.log(libc.runtime, libc.pageSize, libc.getpid());
 * ```
 *
 * @module
 */
import type { Libc } from "./types.ts";

export type { Address, Libc, PollFd, RLimit } from "./types.ts";

async function loadBackend(): Promise<Libc> {
  if ("Bun" in globalThis) {
    // A variable specifier keeps Deno's type checker and module loader away from `bun:ffi`.
    const path = "./bun.ts";
    const backend: { load(): Libc } = await import(path);
    return backend.load();
  }
  if ("Deno" in globalThis) {
    const backend = await import("./deno.ts");
    return backend.load();
  }
  throw new Error("vfio-ts runs on Deno or Bun: neither was detected");
}

/** The libc functions, through the running runtime's FFI. */
export const libc: Libc = await loadBackend();
