/**
 * The process-wide libc facade: `ffi/deno.ts` under Deno, `ffi/bun.ts` under Bun, **bound on first use**.
 *
 * Importing this module opens nothing and needs no permission: libc is `dlopen`ed by the first call of any
 * function (or the first read of `pageSize`), which then replaces every stub of {@linkcode libc} by the backend's
 * own function, so later calls cost exactly what a direct call of the backend costs. If binding fails (Deno without
 * `--allow-ffi`, a runtime that is neither Deno nor Bun) that first call throws an {@linkcode UnsupportedError}
 * saying why; the next call tries again.
 *
 * ```ts
 * import { libc } from "./libc.ts";
 * console.log(libc.runtime, libc.pageSize, libc.getpid());
 * ```
 *
 * @module
 */
import { UnsupportedError } from "../lib/errors.ts";
import { load as loadDeno } from "./deno.ts";
import type { Libc } from "./types.ts";

export type { Address, Libc, PollFd, RLimit } from "./types.ts";

/**
 * The Bun backend's module, under Bun only. Its static `bun:ffi` import would break Deno, so it is imported
 * dynamically (a literal specifier: `deno publish` and bundlers can follow it); importing it opens nothing.
 */
const bunBackend: { load(): Libc } | undefined = "Bun" in globalThis ? await import("./bun.ts") : undefined;

/** Every function of {@linkcode Libc}; the type below fails to compile when one is missing. */
const FUNCTIONS = [
  "open",
  "close",
  "ioctl",
  "ioctlValue",
  "mmap",
  "munmap",
  "madvise",
  "mlock",
  "munlock",
  "eventfd",
  "eventfdRead",
  "memfdCreate",
  "ftruncate",
  "pipe",
  "read",
  "write",
  "pread",
  "pwrite",
  "poll",
  "pollIn",
  "epollCreate",
  "epollCtl",
  "epollWait",
  "sysconf",
  "getuid",
  "geteuid",
  "getpid",
  "getrlimit",
  "flock",
  "setNonBlocking",
  "arrayBuffer",
  "addressOf",
  "waitReadable",
] as const satisfies readonly (keyof Libc)[];
type Listed = (typeof FUNCTIONS)[number];
type Unlisted = Exclude<keyof Libc, Listed | "runtime" | "pageSize">;
const everyFunctionListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyFunctionListed;

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;
const runtime: Libc["runtime"] = bunBackend ? "bun" : "deno";

/** Opens libc through the running runtime's FFI and installs its functions on {@linkcode libc}. */
function bind(): Libc {
  let backend: Libc;
  try {
    if (bunBackend) backend = bunBackend.load();
    else if ("Deno" in globalThis) backend = loadDeno();
    else throw new Error("vfio-ts runs on Deno or Bun: neither was detected");
  } catch (e) {
    throw new UnsupportedError(`cannot open libc through the ${runtime} FFI: ${(e as Error).message}`, {
      remedy: runtime === "deno" ? "grant FFI access: deno run --allow-ffi …" : "run it under Deno 2 or Bun 1",
      cause: e,
    });
  }
  bound = backend;
  install();
  Object.defineProperty(libc, "pageSize", { value: backend.pageSize, enumerable: true });
  return backend;
}

/** The bound backend, once there is one. */
let bound: Libc | null = null;
/** Wraps the backend's functions (tracing, `lib/trace.ts`); `null`: the backend's own functions, no cost. */
let interceptor: ((name: keyof Libc, fn: Fn) => Fn) | null = null;

function install(): void {
  if (!bound) return;
  const target = libc as unknown as Record<Listed, Fn>;
  for (const name of FUNCTIONS) {
    const fn = bound[name] as Fn;
    target[name] = interceptor ? interceptor(name, fn) : fn;
  }
}

/**
 * Installs `wrap` around every libc function (now if libc is bound, else when it binds), or with `null` puts the
 * backend's own functions back. What `lib/trace.ts` logs system calls through; one interceptor at a time.
 *
 * ```ts
 * import { interceptLibc, libc } from "./libc.ts";
 * interceptLibc((name, fn) => (...args) => (console.error(name), fn(...args)));
 * libc.getpid(); // logs "getpid"
 * interceptLibc(null);
 * ```
 */
export function interceptLibc(wrap: ((name: keyof Libc, fn: Fn) => Fn) | null): void {
  interceptor = wrap;
  install();
}

const stubs = Object.fromEntries(
  FUNCTIONS.map((name) => [name, (...args: unknown[]): unknown => {
    bind();
    return (libc[name] as Fn)(...args); // what bind() installed (the backend's own, or the interceptor's wrapper)
  }]),
) as unknown as Pick<Libc, Listed>;

/**
 * The libc functions, through the running runtime's FFI. `runtime` is known at import; everything else binds
 * libc on first use.
 */
export const libc: Libc = {
  runtime,
  get pageSize(): number {
    return bind().pageSize;
  },
  ...stubs,
};
