/**
 * `poll` and `epoll_*` of the libc facade, written once over a backend's raw calls: the structs from
 * `ffi/layout.ts`, EINTR as "nothing ready", every other failure through the backend's `check`.
 *
 * ```ts ignore
 * const calls = eventCalls(raw, () => errnoView[0], check); // in ffi/deno.ts and ffi/bun.ts
 * ```
 * @module
 */
import { ERRNO } from "../lib/errors.ts";
import { POLLIN } from "./constants.ts";
import { EPOLL_EVENT_SIZE, epollEvent, epollTags, pollFds, pollRevents, setPollFd } from "./layout.ts";
import type { Libc } from "./types.ts";

/** A backend's raw calls, each returning the C result (-1 on failure, errno set). */
export interface RawEventCalls {
  /** `poll(fds, nfds, timeout)` on a `struct pollfd` array. */
  poll(fds: Int32Array, count: number, timeoutMs: number): number;
  /** `epoll_create1(flags)`. */
  epollCreate1(flags: number): number;
  /** `epoll_ctl(epfd, op, fd, event)`. */
  epollCtl(epfd: number, op: number, fd: number, event: Uint8Array): number;
  /** `epoll_wait(epfd, events, maxevents, timeout)`. */
  epollWait(epfd: number, events: Uint8Array, maxEvents: number, timeoutMs: number): number;
}

/** The facade's `poll`, `pollIn`, `epollCreate`, `epollCtl` and `epollWait` over `raw`. */
export function eventCalls(
  raw: RawEventCalls,
  errno: () => number,
  check: (r: number, call: string, target?: string) => number,
): Pick<Libc, "poll" | "pollIn" | "epollCreate" | "epollCtl" | "epollWait"> {
  const one = new Int32Array(2); // pollIn's struct pollfd, reused: a blocking wait allocates nothing
  return {
    poll: (fds, timeoutMs) => {
      const b = pollFds(fds);
      const r = raw.poll(b, fds.length, timeoutMs);
      if (r < 0 && errno() === ERRNO.EINTR) return 0;
      check(r, "poll");
      pollRevents(fds, b);
      return r;
    },
    pollIn: (fd, timeoutMs) => {
      const r = raw.poll(setPollFd(one, 0, fd, POLLIN), 1, timeoutMs);
      if (r < 0 && errno() === ERRNO.EINTR) return 0;
      return check(r, "poll");
    },
    epollCreate: (flags) => check(raw.epollCreate1(flags), "epoll_create1"),
    epollCtl: (epfd, op, fd, events, data) =>
      void check(raw.epollCtl(epfd, op, fd, epollEvent(events, data)), "epoll_ctl", `fd ${fd}`),
    epollWait: (epfd, maxEvents, timeoutMs) => {
      const buf = new Uint8Array(EPOLL_EVENT_SIZE * maxEvents);
      const r = raw.epollWait(epfd, buf, maxEvents, timeoutMs);
      if (r < 0 && errno() === ERRNO.EINTR) return [];
      check(r, "epoll_wait");
      return epollTags(buf, r);
    },
  };
}
