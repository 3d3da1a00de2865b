/**
 * The C structs the libc facade passes to `poll`, `epoll_*` and `getrlimit`, laid out once for both backends
 * (`ffi/deno.ts`, `ffi/bun.ts`) and the Bun wait worker. `struct epoll_event` is packed (12 bytes, data at 4) on
 * x86_64 and naturally aligned (16 bytes, data at 8) elsewhere.
 *
 * ```ts
 * import { epollEvent, EPOLL_EVENT_SIZE } from "./layout.ts";
 * const ev = epollEvent(1, 7); // EPOLLIN, tag 7
 * console.log(ev.byteLength === EPOLL_EVENT_SIZE);
 * ```
 *
 * @module
 */
import process from "node:process";
import type { PollFd, RLimit } from "./types.ts";

const PACKED = process.arch === "x64";

/** `sizeof(struct epoll_event)` on this architecture. */
export const EPOLL_EVENT_SIZE: number = PACKED ? 12 : 16;
/** `offsetof(struct epoll_event, data)` on this architecture. */
export const EPOLL_DATA_OFFSET: number = PACKED ? 4 : 8;

/**
 * Writes one `struct epoll_event` (events, 32-bit data tag) into `into` (a fresh buffer when omitted).
 *
 * ```ts
 * import { epollEvent } from "./layout.ts";
 * const ev = epollEvent(1, 42);
 * ```
 */
export function epollEvent(events: number, data: number, into?: Uint8Array): Uint8Array {
  const bytes = into ?? new Uint8Array(EPOLL_EVENT_SIZE);
  const view = new DataView(bytes.buffer, bytes.byteOffset, EPOLL_EVENT_SIZE);
  view.setUint32(0, events, true);
  view.setUint32(EPOLL_DATA_OFFSET, data, true);
  return bytes;
}

/**
 * The 32-bit data tags of the first `count` events `epoll_wait` filled into `buf`.
 *
 * ```ts
 * import { EPOLL_EVENT_SIZE, epollTags } from "./layout.ts";
 * console.log(epollTags(new Uint8Array(EPOLL_EVENT_SIZE), 1)); // [0]
 * ```
 */
export function epollTags(buf: Uint8Array, count: number): number[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return Array.from({ length: count }, (_, i) => view.getUint32(i * EPOLL_EVENT_SIZE + EPOLL_DATA_OFFSET, true));
}

/**
 * Writes entry `i` of a `struct pollfd` array (`int fd; short events; short revents;`, 8 bytes each: two 32-bit
 * words, `revents` the upper half of the second), with `revents` cleared; returns `into`.
 *
 * ```ts
 * import { setPollFd } from "./layout.ts";
 * const b = setPollFd(new Int32Array(2), 0, 0, 1); // fd 0, POLLIN
 * ```
 */
export function setPollFd(into: Int32Array, i: number, fd: number, events: number): Int32Array {
  into[i * 2] = fd;
  into[i * 2 + 1] = events & 0xffff;
  return into;
}

/**
 * The `revents` the kernel wrote into entry `i` of a `struct pollfd` array.
 *
 * ```ts
 * import { pollRevent, setPollFd } from "./layout.ts";
 * pollRevent(setPollFd(new Int32Array(2), 0, 0, 1), 0); // 0 until poll() has run
 * ```
 */
export function pollRevent(b: Int32Array, i: number): number {
  return b[i * 2 + 1] >>> 16;
}

/**
 * An array of `struct pollfd` (see {@linkcode setPollFd}) for `fds`.
 *
 * ```ts
 * import { pollFds } from "./layout.ts";
 * const b = pollFds([{ fd: 0, events: 1 }]);
 * ```
 */
export function pollFds(fds: readonly PollFd[]): Int32Array {
  const b = new Int32Array(fds.length * 2);
  fds.forEach((p, i) => setPollFd(b, i, p.fd, p.events));
  return b;
}

/**
 * Copies the `revents` that `poll` wrote into `b` back onto `fds`.
 *
 * ```ts
 * import { pollFds, pollRevents } from "./layout.ts";
 * const fds = [{ fd: 0, events: 1 }];
 * pollRevents(fds, pollFds(fds));
 * ```
 */
export function pollRevents(fds: PollFd[], b: Int32Array): void {
  fds.forEach((p, i) => p.revents = pollRevent(b, i));
}

/**
 * Reads a `struct rlimit` (two `rlim_t`), `RLIM_INFINITY` as `Infinity`.
 *
 * ```ts
 * import { rlimit } from "./layout.ts";
 * console.log(rlimit(new BigUint64Array([8n, 0xffffffffffffffffn]))); // { soft: 8, hard: Infinity }
 * ```
 */
export function rlimit(lim: BigUint64Array): RLimit {
  const n = (v: bigint): number => v === 0xffffffffffffffffn ? Infinity : Number(v);
  return { soft: n(lim[0]), hard: n(lim[1]) };
}
