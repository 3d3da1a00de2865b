/**
 * What the two backends (`ffi/deno.ts`, `ffi/bun.ts`) share around their raw calls: a C string from a JS string, the
 * `check` that turns a negative result into a `SystemError` (through `throwErrno`, with the errno read from the
 * backend's view of the thread's `errno` right after the call), and the calls whose arguments are the same on both
 * runtimes (fds, flags, C strings), written once.
 *
 * ```ts ignore
 * const check = errnoCheck(errnoView); // in ffi/deno.ts and ffi/bun.ts
 * const calls = { ...commonCalls(s, errnoView, check) };
 * ```
 * @module
 */
import { type CallTarget, ERRNO, throwErrno } from "../lib/errors.ts";
import { F_GETFL, F_SETFL, O_NONBLOCK } from "./constants.ts";
import type { Libc } from "./types.ts";

const encoder = new TextEncoder();

/** `text` as a NUL-terminated UTF-8 C string. */
export function cstring(text: string): Uint8Array {
  return encoder.encode(text + "\0");
}

/** A backend's `check(r, call, target)`: returns `r`, or throws for a negative `r` with the errno in `errno[0]`. */
export function errnoCheck(errno: Int32Array): (r: number, call: string, target?: CallTarget) => number {
  return (r, call, target) => {
    if (r < 0) throwErrno(call, errno[0], target);
    return r;
  };
}

/** A backend's raw calls that take fds, flags and C strings alike on both runtimes (the C result, -1 on failure). */
export interface RawCommonCalls {
  /** `open(pathname, flags, mode)`. */
  open(path: Uint8Array, flags: number, mode: number): number;
  /** `close(fd)`. */
  close(fd: number): number;
  /** `eventfd(initval, flags)`. */
  eventfd(initval: number, flags: number): number;
  /** `eventfd_read(fd, value)`: 0, or -1. */
  eventfd_read(fd: number, value: Uint8Array): number;
  /** `memfd_create(name, flags)`. */
  memfd_create(name: Uint8Array, flags: number): number;
  /** `flock(fd, operation)`. */
  flock(fd: number, operation: number): number;
  /** `fcntl(fd, cmd, arg)` with an int argument. */
  fcntl(fd: number, cmd: number, arg: number): number;
}

/** The facade's `open`, `close`, `eventfd`, `eventfdRead`, `memfdCreate`, `flock` and `setNonBlocking` over `raw`. */
export function commonCalls(
  raw: RawCommonCalls,
  errno: Int32Array,
  check: (r: number, call: string, target?: CallTarget) => number,
): Pick<Libc, "open" | "close" | "eventfd" | "eventfdRead" | "memfdCreate" | "flock" | "setNonBlocking"> {
  return {
    open: (path, flags, mode = 0, kind) => check(raw.open(cstring(path), flags, mode), "open", { target: path, kind }),
    close: (fd, target) => void check(raw.close(fd), "close", target ?? `fd ${fd}`),
    eventfd: (initval, flags) => check(raw.eventfd(initval, flags), "eventfd"),
    eventfdRead: (fd, value, target) => {
      if (raw.eventfd_read(fd, value) === 0) return 0;
      if (errno[0] === ERRNO.EAGAIN || errno[0] === ERRNO.EINTR) return -1;
      return throwErrno("eventfd_read", errno[0], { target });
    },
    memfdCreate: (name, flags) => check(raw.memfd_create(cstring(name), flags), "memfd_create", name),
    flock: (fd, operation, target) => {
      if (raw.flock(fd, operation) === 0) return true;
      if (errno[0] === ERRNO.EAGAIN) return false;
      return throwErrno("flock", errno[0], { target });
    },
    setNonBlocking: (fd, on, target) => {
      const flags = check(raw.fcntl(fd, F_GETFL, 0), "fcntl", target);
      check(raw.fcntl(fd, F_SETFL, on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK), "fcntl", target);
    },
  };
}
