/**
 * The runtime-neutral libc facade: the few system calls vfio-ts needs, one interface, two backends
 * (`ffi/deno.ts` over `Deno.dlopen`, `ffi/bun.ts` over `bun:ffi`), chosen once at load time by `ffi/libc.ts`.
 *
 * Conventions, the same in both backends:
 * - A failing call throws a {@linkcode SystemError} (built by `throwErrno`, errno read right after the call);
 *   the optional `target` names what the call was aimed at (a path, an ioctl name) for the message (with its `kind`
 *   where the remedy depends on it: `{ target: "VFIO_DEVICE_GET_INFO", kind: "vfio-device-ioctl" }`).
 * - Addresses are `bigint`s; lengths and file offsets are `number`s (≤ 2^53).
 * - Buffers are `Uint8Array`s (any `ArrayBufferView` where noted), passed without copying.
 *
 * @module
 */

import type { CallTarget, TargetKind } from "../lib/errors.ts";

/** A virtual address in this process. */
export type Address = bigint;

/** One entry of a `poll()` set. */
export interface PollFd {
  /** The file descriptor. */
  fd: number;
  /** Requested events (`POLLIN` …). */
  events: number;
  /** Returned events, filled by `poll()`. */
  revents?: number;
}

/** Resource limits as reported by `getrlimit` (`Infinity` for `RLIM_INFINITY`). */
export interface RLimit {
  /** Soft limit. */
  soft: number;
  /** Hard limit. */
  hard: number;
}

/**
 * The libc functions vfio-ts calls. Obtain the process-wide instance with `libc` from `ffi/libc.ts`.
 *
 * ```ts
 * import { libc } from "./libc.ts";
 * const fd = libc.eventfd(0, 0);
 * libc.write(fd, new Uint8Array(new BigUint64Array([1n]).buffer));
 * libc.close(fd);
 * ```
 */
export interface Libc {
  /** Which runtime's FFI backs this instance. */
  readonly runtime: "deno" | "bun";
  /** The system page size in bytes. */
  readonly pageSize: number;

  /** `open(2)`; returns the fd. `kind` says what the path is, for the remedy of a failure. */
  open(path: string, flags: number, mode?: number, kind?: TargetKind): number;
  /** `close(2)`. */
  close(fd: number, target?: string): void;
  /** `ioctl(2)` with a pointer argument (a struct in `arg`, or `null`); returns the call's non-negative result. */
  ioctl(fd: number, request: number, arg: ArrayBufferView | null, target?: CallTarget): number;
  /** `ioctl(2)` with an integer argument passed by value (e.g. `VFIO_SET_IOMMU`, `VFIO_CHECK_EXTENSION`). */
  ioctlValue(fd: number, request: number, value: number, target?: CallTarget): number;
  /** `mmap(2)`; returns the mapping's address. `address` is a hint (or `MAP_FIXED` target), 0n for none. */
  mmap(
    length: number,
    prot: number,
    flags: number,
    fd: number,
    offset: number,
    target?: string,
    address?: Address,
  ): Address;
  /** `munmap(2)`. */
  munmap(address: Address, length: number): void;
  /** `madvise(2)`. */
  madvise(address: Address, length: number, advice: number): void;
  /** `mlock(2)`. */
  mlock(address: Address, length: number): void;
  /** `munlock(2)`. */
  munlock(address: Address, length: number): void;
  /** `eventfd(2)`; returns the fd. */
  eventfd(initval: number, flags: number): number;
  /**
   * glibc's `eventfd_read(3)`: reads the 8-byte counter of an eventfd into `value` (8 bytes). Returns 0, or `-1`
   * when nothing was read: the fd is non-blocking and the counter is 0 (EAGAIN), or a signal interrupted a blocking
   * read (EINTR).
   */
  eventfdRead(fd: number, value: Uint8Array, target?: string): number;
  /** `memfd_create(2)`; returns the fd. */
  memfdCreate(name: string, flags: number): number;
  /** `ftruncate(2)`. */
  ftruncate(fd: number, length: number): void;
  /** `pipe2(2)`; returns `[readEnd, writeEnd]`. */
  pipe(flags: number): [number, number];
  /**
   * `read(2)`; returns the byte count, or `-1` when nothing was read: the fd is non-blocking and nothing is ready
   * (EAGAIN), or a signal interrupted a blocking read (EINTR).
   */
  read(fd: number, buf: ArrayBufferView, target?: string): number;
  /** `write(2)`; returns the byte count, or `-1` on EAGAIN. */
  write(fd: number, buf: ArrayBufferView, target?: string): number;
  /** `pread(2)` of `buf.byteLength` bytes at `offset`; returns the byte count. */
  pread(fd: number, buf: ArrayBufferView, offset: number, target?: string): number;
  /** `pwrite(2)` of `buf.byteLength` bytes at `offset`; returns the byte count. */
  pwrite(fd: number, buf: ArrayBufferView, offset: number, target?: string): number;
  /** `poll(2)`; fills `revents`, returns the number of ready fds (0 on timeout). EINTR returns 0. */
  poll(fds: PollFd[], timeoutMs: number): number;
  /**
   * `poll(2)` on one fd for `POLLIN`, with no allocation (a blocking wait's hot path); returns poll's result (0 on
   * timeout or EINTR).
   */
  pollIn(fd: number, timeoutMs: number): number;
  /** `epoll_create1(2)`. */
  epollCreate(flags: number): number;
  /** `epoll_ctl(2)`; `data` is a 32-bit tag returned by `epollWait`. */
  epollCtl(epfd: number, op: number, fd: number, events: number, data: number): void;
  /** `epoll_wait(2)`; returns the tags of the ready fds (empty on timeout or EINTR). */
  epollWait(epfd: number, maxEvents: number, timeoutMs: number): number[];
  /** `sysconf(3)`. */
  sysconf(name: number): number;
  /** `getuid(2)`. */
  getuid(): number;
  /** `geteuid(2)`. */
  geteuid(): number;
  /** `getpid(2)`. */
  getpid(): number;
  /** `getrlimit(2)`. */
  getrlimit(resource: number): RLimit;
  /** `flock(2)`; returns `false` when `LOCK_NB` is set and another open file holds the lock (EWOULDBLOCK). */
  flock(fd: number, operation: number, target?: string): boolean;
  /** Sets or clears `O_NONBLOCK` on the open file (`fcntl(2)` F_GETFL, F_SETFL). */
  setNonBlocking(fd: number, on: boolean, target?: string): void;

  /**
   * **UNSAFE**: a zero-copy `ArrayBuffer` over `length` bytes at `address`. It has no finalizer and does not keep the
   * memory alive: using it after the memory is unmapped crashes the process.
   */
  arrayBuffer(address: Address, length: number): ArrayBuffer;
  /** The address of the first byte of a typed array's view (for `VFIO_IOMMU_MAP_DMA` `vaddr` and friends). */
  addressOf(view: ArrayBufferView): Address;
  /**
   * Waits, without blocking the event loop, until `fd` is readable or `timeoutMs` passes (-1: forever);
   * resolves `true` when readable.
   */
  waitReadable(fd: number, timeoutMs: number): Promise<boolean>;
}
