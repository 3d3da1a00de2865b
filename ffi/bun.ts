/**
 * The libc facade over `bun:ffi`, of the symbols in `ffi/symbols.ts`. Loaded only under Bun, through a dynamic
 * import (a static import of `bun:ffi` would make the module fail to load under Deno).
 *
 * Measured rules this file follows: pointers are plain numbers, `*_fast` 64-bit types take and return numbers,
 * `mmap`'s `MAP_FAILED` arrives as a bigint, errno is read from a view over `__errno_location()` right after the
 * call. A second signature of one symbol needs a second `dlopen`.
 *
 * @module
 */
// @ts-ignore: `bun:ffi` exists only under Bun; Deno never loads this file.
import { dlopen, FFIType as T, ptr as bunPtr, toArrayBuffer } from "bun:ffi";
import { ERRNO, throwErrno } from "../lib/errors.ts";
import { commonCalls, errnoCheck } from "./common_calls.ts";
import { SC_PAGESIZE } from "./constants.ts";
import { eventCalls } from "./event_calls.ts";
import { rlimit } from "./layout.ts";
import { type CFunction, type CType, LIBC } from "./symbols.ts";
import type { Address, Libc, RLimit } from "./types.ts";
import { waitReadableInWorker } from "./wait_worker.ts";

/** The Bun FFI type of each neutral C type of `ffi/symbols.ts` (64-bit integers as `*_fast`: numbers in, out). */
const BUN_TYPE: Record<CType, unknown> = {
  i32: T.i32,
  u32: T.u32,
  i64: T.i64_fast,
  u64: T.u64_fast,
  isize: T.i64_fast,
  usize: T.u64_fast,
  ptr: T.ptr,
  buf: T.ptr,
};

/** The Bun declaration of one entry of the libc table. */
const bunSymbol = (f: CFunction): { args: unknown[]; returns: unknown } => ({
  args: f.args.map((t) => BUN_TYPE[t]),
  returns: BUN_TYPE[f.returns],
});

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;

/** Builds the Bun backend. */
export function load(): Libc {
  // One dlopen for the plain entries; a second signature of a symbol needs a dlopen of its own under Bun, and
  // the nonblocking entries are Deno's.
  const entries = Object.entries(LIBC) as [keyof typeof LIBC, CFunction][];
  const plain = Object.fromEntries(entries.filter(([, f]) => !f.symbol).map(([k, f]) => [k, bunSymbol(f)]));
  const s = dlopen("libc.so.6", plain).symbols as Record<keyof typeof LIBC, Fn>;
  for (const [key, f] of entries) {
    if (f.symbol && !f.nonblocking) s[key] = dlopen("libc.so.6", { [f.symbol]: bunSymbol(f) }).symbols[f.symbol];
  }
  const errnoView = new Int32Array(toArrayBuffer(s.__errno_location(), 0, 4));
  const { EAGAIN, EINTR } = ERRNO;
  const pageSize = s.sysconf(SC_PAGESIZE) as number;
  const num = (address: Address): number => Number(address);

  const check = errnoCheck(errnoView);

  return {
    runtime: "bun",
    pageSize,
    ...commonCalls(s, errnoView, check),
    ioctl: (fd, request, arg, target) => check(s.ioctl(fd, request, arg), "ioctl", target),
    ioctlValue: (fd, request, value, target) => check(s.ioctl_value(fd, request, value), "ioctl", target),
    mmap: (length, prot, flags, fd, offset, target, address = 0n) => {
      const p = s.mmap(address ? num(address) : null, length, prot, flags, fd, offset);
      if (typeof p !== "number") throwErrno("mmap", errnoView[0], { target }); // MAP_FAILED arrives as a bigint
      return BigInt(p);
    },
    munmap: (address, length) => void check(s.munmap(num(address), length), "munmap"),
    madvise: (address, length, advice) => void check(s.madvise(num(address), length, advice), "madvise"),
    mlock: (address, length) => void check(s.mlock(num(address), length), "mlock"),
    munlock: (address, length) => void check(s.munlock(num(address), length), "munlock"),
    ftruncate: (fd, length) => void check(s.ftruncate(fd, length), "ftruncate"),
    pipe: (flags) => {
      const fds = new Int32Array(2);
      check(s.pipe2(fds, flags), "pipe2");
      return [fds[0], fds[1]];
    },
    read: (fd, buf, target) => {
      const r = s.read(fd, buf, buf.byteLength);
      if (r < 0 && (errnoView[0] === EAGAIN || errnoView[0] === EINTR)) return -1;
      return check(r, "read", target);
    },
    write: (fd, buf, target) => {
      const r = s.write(fd, buf, buf.byteLength);
      if (r < 0 && errnoView[0] === EAGAIN) return -1;
      return check(r, "write", target);
    },
    pread: (fd, buf, offset, target) => check(s.pread(fd, buf, buf.byteLength, offset), "pread", target),
    pwrite: (fd, buf, offset, target) => check(s.pwrite(fd, buf, buf.byteLength, offset), "pwrite", target),
    ...eventCalls(
      {
        poll: (b, count, timeoutMs) => s.poll(b, count, timeoutMs),
        epollCreate1: (flags) => s.epoll_create1(flags),
        epollCtl: (epfd, op, fd, event) => s.epoll_ctl(epfd, op, fd, event),
        epollWait: (epfd, events, maxEvents, timeoutMs) => s.epoll_wait(epfd, events, maxEvents, timeoutMs),
      },
      () => errnoView[0],
      check,
    ),
    sysconf: (name) => s.sysconf(name),
    getuid: () => s.getuid(),
    geteuid: () => s.geteuid(),
    getpid: () => s.getpid(),
    getrlimit: (resource): RLimit => {
      const lim = new BigUint64Array(2);
      check(s.getrlimit(resource, lim), "getrlimit");
      return rlimit(lim);
    },
    arrayBuffer: (address, length) => toArrayBuffer(num(address), 0, length),
    addressOf: (view) => BigInt(bunPtr(view)),
    waitReadable: (fd, timeoutMs) => waitReadableInWorker(fd, timeoutMs),
  };
}
