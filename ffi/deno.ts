/**
 * The libc facade over `Deno.dlopen`, of the symbols in `ffi/symbols.ts`. Loaded only under Deno (see
 * `ffi/libc.ts`).
 *
 * Measured rules this file follows: 64-bit parameters are passed as `bigint`
 * (a JS number costs 30x more), errno is read from a view over `__errno_location()` right after the call,
 * and the blocking wait runs as a `nonblocking` call on Deno's FFI thread pool.
 *
 * @module
 */
import { ERRNO, throwErrno } from "../lib/errors.ts";
import { commonCalls, errnoCheck } from "./common_calls.ts";
import { POLLIN, SC_PAGESIZE } from "./constants.ts";
import { eventCalls } from "./event_calls.ts";
import { pollRevent, rlimit, setPollFd } from "./layout.ts";
import { denoSymbols } from "./symbols.ts";
import type { Address, Libc, RLimit } from "./types.ts";

/** Builds the Deno backend. */
export function load(): Libc {
  const lib = Deno.dlopen("libc.so.6", denoSymbols() satisfies Deno.ForeignLibraryInterface);
  const s = lib.symbols;
  const errnoView = new Int32Array(Deno.UnsafePointerView.getArrayBuffer(s.__errno_location()!, 4));
  const ptr = (address: Address): Deno.PointerValue => Deno.UnsafePointer.create(address);
  const bytes = (view: ArrayBufferView): Uint8Array =>
    view instanceof Uint8Array ? view : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  const MAP_FAILED = 0xffffffffffffffffn;
  const { EAGAIN, EINTR } = ERRNO;
  const pageSize = Number(s.sysconf(SC_PAGESIZE));

  const check = errnoCheck(errnoView);

  return {
    runtime: "deno",
    pageSize,
    ...commonCalls(s, errnoView, check),
    ioctl: (fd, request, arg, target) => check(s.ioctl(fd, request, arg && bytes(arg)), "ioctl", target),
    ioctlValue: (fd, request, value, target) => check(s.ioctl_value(fd, request, BigInt(value)), "ioctl", target),
    mmap: (length, prot, flags, fd, offset, target, address = 0n) => {
      const p = s.mmap(address ? ptr(address) : null, BigInt(length), prot, flags, fd, BigInt(offset));
      const v = p === null ? 0n : Deno.UnsafePointer.value(p);
      if (v === MAP_FAILED) throwErrno("mmap", errnoView[0], { target });
      return v;
    },
    munmap: (address, length) => void check(s.munmap(ptr(address), BigInt(length)), "munmap"),
    madvise: (address, length, advice) => void check(s.madvise(ptr(address), BigInt(length), advice), "madvise"),
    mlock: (address, length) => void check(s.mlock(ptr(address), BigInt(length)), "mlock"),
    munlock: (address, length) => void check(s.munlock(ptr(address), BigInt(length)), "munlock"),
    ftruncate: (fd, length) => void check(s.ftruncate(fd, BigInt(length)), "ftruncate"),
    pipe: (flags) => {
      const fds = new Int32Array(2);
      check(s.pipe2(new Uint8Array(fds.buffer), flags), "pipe2");
      return [fds[0], fds[1]];
    },
    read: (fd, buf, target) => {
      const r = Number(s.read(fd, bytes(buf), BigInt(buf.byteLength)));
      if (r < 0 && (errnoView[0] === EAGAIN || errnoView[0] === EINTR)) return -1;
      return check(r, "read", target);
    },
    write: (fd, buf, target) => {
      const r = Number(s.write(fd, bytes(buf), BigInt(buf.byteLength)));
      if (r < 0 && errnoView[0] === EAGAIN) return -1;
      return check(r, "write", target);
    },
    pread: (fd, buf, offset, target) =>
      check(Number(s.pread(fd, bytes(buf), BigInt(buf.byteLength), BigInt(offset))), "pread", target),
    pwrite: (fd, buf, offset, target) =>
      check(Number(s.pwrite(fd, bytes(buf), BigInt(buf.byteLength), BigInt(offset))), "pwrite", target),
    ...eventCalls(
      {
        poll: (b, count, timeoutMs) => s.poll(new Uint8Array(b.buffer), BigInt(count), timeoutMs),
        epollCreate1: (flags) => s.epoll_create1(flags),
        epollCtl: (epfd, op, fd, event) => s.epoll_ctl(epfd, op, fd, event),
        epollWait: (epfd, events, maxEvents, timeoutMs) => s.epoll_wait(epfd, events, maxEvents, timeoutMs),
      },
      () => errnoView[0],
      check,
    ),
    sysconf: (name) => Number(s.sysconf(name)),
    getuid: () => s.getuid(),
    geteuid: () => s.geteuid(),
    getpid: () => s.getpid(),
    getrlimit: (resource): RLimit => {
      const lim = new BigUint64Array(2);
      check(s.getrlimit(resource, new Uint8Array(lim.buffer)), "getrlimit");
      return rlimit(lim);
    },
    arrayBuffer: (address, length) => Deno.UnsafePointerView.getArrayBuffer(ptr(address)!, length),
    addressOf: (view) => Deno.UnsafePointer.value(Deno.UnsafePointer.of(view)),
    waitReadable: async (fd, timeoutMs) => {
      const b = setPollFd(new Int32Array(2), 0, fd, POLLIN);
      const r = await s.poll_async(new Uint8Array(b.buffer), 1n, timeoutMs);
      return r > 0 && (pollRevent(b, 0) & POLLIN) !== 0;
    },
  };
}
