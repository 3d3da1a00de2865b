/**
 * The worker thread behind `wait_worker.ts` (Bun only): blocks in `epoll_wait` and posts the ready tags.
 *
 * @module
 */
// @ts-ignore: `bun:ffi` exists only under Bun; Deno never loads this file.
import { dlopen, FFIType as T } from "bun:ffi";
import { EPOLL_EVENT_SIZE, epollTags } from "./layout.ts";

/** The one symbol the worker needs. */
const symbols = {
  /** int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout); */
  epoll_wait: { args: [T.i32, T.ptr, T.i32, T.i32], returns: T.i32 },
};

// deno-lint-ignore no-explicit-any
const worker = globalThis as any;
worker.onmessage = (e: MessageEvent<number>): void => {
  const ep = e.data;
  // deno-lint-ignore no-explicit-any
  const { epoll_wait } = dlopen("libc.so.6", symbols).symbols as Record<string, (...a: any[]) => number>;
  const buf = new Uint8Array(EPOLL_EVENT_SIZE * 64);
  for (;;) {
    const n = epoll_wait(ep, buf, 64, -1);
    if (n <= 0) continue;
    worker.postMessage(epollTags(buf, n));
  }
};
