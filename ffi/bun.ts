/**
 * The libc facade over `bun:ffi`. Loaded only under Bun, through a dynamic import (a static import of
 * `bun:ffi` would make the module fail to load under Deno).
 *
 * Measured rules this file follows: pointers are plain numbers, `*_fast` 64-bit
 * types take and return numbers, `mmap`'s `MAP_FAILED` arrives as a bigint, errno is read from a view over
 * `__errno_location()` right after the call. A second signature of one symbol needs a second `dlopen`.
 *
 * @module
 */
// @ts-ignore: `bun:ffi` exists only under Bun; Deno never loads this file.
import { dlopen, FFIType as T, ptr as bunPtr, toArrayBuffer } from "bun:ffi";
import { throwErrno } from "../lib/errors.ts";
import { EPOLL_EVENT_SIZE, epollEvent, epollTags, pollFds, pollRevents, rlimit } from "./layout.ts";
import type { Address, Libc, PollFd, RLimit } from "./types.ts";
import { waitReadableInWorker } from "./wait_worker.ts";

/** Every libc symbol vfio-ts uses under Bun, with its C prototype. */
const symbols = {
  /** int open(const char *pathname, int flags, mode_t mode); */
  open: { args: [T.ptr, T.i32, T.u32], returns: T.i32 },
  /** int close(int fd); */
  close: { args: [T.i32], returns: T.i32 },
  /** int ioctl(int fd, unsigned long request, void *arg);  (variadic, called with a fixed pointer argument) */
  ioctl: { args: [T.i32, T.u32, T.ptr], returns: T.i32 },
  /** void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset); */
  mmap: { args: [T.ptr, T.u64_fast, T.i32, T.i32, T.i32, T.i64_fast], returns: T.ptr },
  /** int munmap(void *addr, size_t length); */
  munmap: { args: [T.ptr, T.u64_fast], returns: T.i32 },
  /** int madvise(void *addr, size_t length, int advice); */
  madvise: { args: [T.ptr, T.u64_fast, T.i32], returns: T.i32 },
  /** int mlock(const void *addr, size_t len); */
  mlock: { args: [T.ptr, T.u64_fast], returns: T.i32 },
  /** int munlock(const void *addr, size_t len); */
  munlock: { args: [T.ptr, T.u64_fast], returns: T.i32 },
  /** int eventfd(unsigned int initval, int flags); */
  eventfd: { args: [T.u32, T.i32], returns: T.i32 },
  /** int memfd_create(const char *name, unsigned int flags); */
  memfd_create: { args: [T.ptr, T.u32], returns: T.i32 },
  /** int ftruncate(int fd, off_t length); */
  ftruncate: { args: [T.i32, T.i64_fast], returns: T.i32 },
  /** int pipe2(int pipefd[2], int flags); */
  pipe2: { args: [T.ptr, T.i32], returns: T.i32 },
  /** ssize_t read(int fd, void *buf, size_t count); */
  read: { args: [T.i32, T.ptr, T.u64_fast], returns: T.i64_fast },
  /** ssize_t write(int fd, const void *buf, size_t count); */
  write: { args: [T.i32, T.ptr, T.u64_fast], returns: T.i64_fast },
  /** ssize_t pread(int fd, void *buf, size_t count, off_t offset); */
  pread: { args: [T.i32, T.ptr, T.u64_fast, T.i64_fast], returns: T.i64_fast },
  /** ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset); */
  pwrite: { args: [T.i32, T.ptr, T.u64_fast, T.i64_fast], returns: T.i64_fast },
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout); */
  poll: { args: [T.ptr, T.u64_fast, T.i32], returns: T.i32 },
  /** int epoll_create1(int flags); */
  epoll_create1: { args: [T.i32], returns: T.i32 },
  /** int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event); */
  epoll_ctl: { args: [T.i32, T.i32, T.i32, T.ptr], returns: T.i32 },
  /** int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout); */
  epoll_wait: { args: [T.i32, T.ptr, T.i32, T.i32], returns: T.i32 },
  /** long sysconf(int name); */
  sysconf: { args: [T.i32], returns: T.i64_fast },
  /** uid_t getuid(void); */
  getuid: { args: [], returns: T.u32 },
  /** uid_t geteuid(void); */
  geteuid: { args: [], returns: T.u32 },
  /** pid_t getpid(void); */
  getpid: { args: [], returns: T.i32 },
  /** int getrlimit(int resource, struct rlimit *rlim); */
  getrlimit: { args: [T.i32, T.ptr], returns: T.i32 },
  /** int flock(int fd, int operation); */
  flock: { args: [T.i32, T.i32], returns: T.i32 },
  /** int *__errno_location(void); */
  __errno_location: { args: [], returns: T.ptr },
};

/** The integer-argument form of ioctl needs its own dlopen under Bun (no symbol aliases). */
const valueSymbols = {
  /** int ioctl(int fd, unsigned long request, unsigned long value); */
  ioctl: { args: [T.i32, T.u32, T.u64_fast], returns: T.i32 },
};

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;

/** Builds the Bun backend. */
export function load(): Libc {
  const s = dlopen("libc.so.6", symbols).symbols as Record<keyof typeof symbols, Fn>;
  const v = dlopen("libc.so.6", valueSymbols).symbols as Record<keyof typeof valueSymbols, Fn>;
  const errnoView = new Int32Array(toArrayBuffer(s.__errno_location(), 0, 4));
  const encoder = new TextEncoder();
  const cstring = (text: string): Uint8Array => encoder.encode(text + "\0");
  const EAGAIN = 11, EINTR = 4;
  const pageSize = s.sysconf(30 /* _SC_PAGESIZE */) as number;
  const num = (address: Address): number => Number(address);

  const check = (r: number, call: string, target?: string): number => {
    if (r < 0) throwErrno(call, errnoView[0], { target });
    return r;
  };

  return {
    runtime: "bun",
    pageSize,
    open: (path, flags, mode = 0) => check(s.open(cstring(path), flags, mode), "open", path),
    close: (fd, target) => void check(s.close(fd), "close", target ?? `fd ${fd}`),
    ioctl: (fd, request, arg, target) => check(s.ioctl(fd, request, arg), "ioctl", target),
    ioctlValue: (fd, request, value, target) => check(v.ioctl(fd, request, value), "ioctl", target),
    mmap: (length, prot, flags, fd, offset, target, address = 0n) => {
      const p = s.mmap(address ? num(address) : null, length, prot, flags, fd, offset);
      if (typeof p !== "number") throwErrno("mmap", errnoView[0], { target }); // MAP_FAILED arrives as a bigint
      return BigInt(p);
    },
    munmap: (address, length) => void check(s.munmap(num(address), length), "munmap"),
    madvise: (address, length, advice) => void check(s.madvise(num(address), length, advice), "madvise"),
    mlock: (address, length) => void check(s.mlock(num(address), length), "mlock"),
    munlock: (address, length) => void check(s.munlock(num(address), length), "munlock"),
    eventfd: (initval, flags) => check(s.eventfd(initval, flags), "eventfd"),
    memfdCreate: (name, flags) => check(s.memfd_create(cstring(name), flags), "memfd_create", name),
    ftruncate: (fd, length) => void check(s.ftruncate(fd, length), "ftruncate"),
    pipe: (flags) => {
      const fds = new Int32Array(2);
      check(s.pipe2(fds, flags), "pipe2");
      return [fds[0], fds[1]];
    },
    read: (fd, buf, target) => {
      const r = s.read(fd, buf, buf.byteLength);
      if (r < 0 && errnoView[0] === EAGAIN) return -1;
      return check(r, "read", target);
    },
    write: (fd, buf, target) => {
      const r = s.write(fd, buf, buf.byteLength);
      if (r < 0 && errnoView[0] === EAGAIN) return -1;
      return check(r, "write", target);
    },
    pread: (fd, buf, offset, target) => check(s.pread(fd, buf, buf.byteLength, offset), "pread", target),
    pwrite: (fd, buf, offset, target) => check(s.pwrite(fd, buf, buf.byteLength, offset), "pwrite", target),
    poll: (fds: PollFd[], timeoutMs) => {
      const b = pollFds(fds);
      const r = s.poll(b, fds.length, timeoutMs);
      if (r < 0 && errnoView[0] === EINTR) return 0;
      check(r, "poll");
      pollRevents(fds, b);
      return r;
    },
    epollCreate: (flags) => check(s.epoll_create1(flags), "epoll_create1"),
    epollCtl: (epfd, op, fd, events, data) =>
      void check(s.epoll_ctl(epfd, op, fd, epollEvent(events, data)), "epoll_ctl", `fd ${fd}`),
    epollWait: (epfd, maxEvents, timeoutMs) => {
      const buf = new Uint8Array(EPOLL_EVENT_SIZE * maxEvents);
      const r = s.epoll_wait(epfd, buf, maxEvents, timeoutMs);
      if (r < 0 && errnoView[0] === EINTR) return [];
      check(r, "epoll_wait");
      return epollTags(buf, r);
    },
    sysconf: (name) => s.sysconf(name),
    getuid: () => s.getuid(),
    geteuid: () => s.geteuid(),
    getpid: () => s.getpid(),
    getrlimit: (resource): RLimit => {
      const lim = new BigUint64Array(2);
      check(s.getrlimit(resource, lim), "getrlimit");
      return rlimit(lim);
    },
    flock: (fd, operation, target) => {
      if (s.flock(fd, operation) === 0) return true;
      if (errnoView[0] === EAGAIN) return false;
      return throwErrno("flock", errnoView[0], { target });
    },
    arrayBuffer: (address, length) => toArrayBuffer(num(address), 0, length),
    addressOf: (view) => BigInt(bunPtr(view)),
    waitReadable: (fd, timeoutMs) => waitReadableInWorker(fd, timeoutMs),
  };
}
