/**
 * Bun's way to wait for a readable fd without blocking the event loop: Bun's FFI has no asynchronous calls, so
 * one worker thread sits in `epoll_wait` on a process-wide epoll set and hands the ready events' tags back through
 * a ring in shared memory, waking the main thread's `Atomics.waitAsync` on the ring's count. On the host's CPU
 * (`bench/wake_native.ts`) a wake-up through it takes 1.2-1.3x the C waiter-thread hand-off; posting the events to
 * the main thread instead took 1.55-1.7x (a structured clone per message). Registrations are one-shot and made by
 * the main thread directly with `epoll_ctl` (the worker never needs to be told). The worker's program is the few
 * lines of `WORKER_SOURCE`, started from a `blob:` URL: it needs no file beside this module, so it also runs when
 * vfio-ts was bundled (`bun build`) or loaded from anywhere else.
 *
 * @module
 */
// @ts-ignore: `bun:ffi` exists only under Bun; Deno never loads this file.
import { dlopen, FFIType as T } from "bun:ffi";
import { EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLLIN, EPOLLONESHOT } from "./constants.ts";
import { EPOLL_DATA_OFFSET, EPOLL_EVENT_SIZE, epollEvent } from "./layout.ts";

/** The symbols the main thread needs for registrations. */
const symbols = {
  /** int epoll_create1(int flags); */
  epoll_create1: { args: [T.i32], returns: T.i32 },
  /** int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event); */
  epoll_ctl: { args: [T.i32, T.i32, T.i32, T.ptr], returns: T.i32 },
};

// deno-lint-ignore no-explicit-any
type Fn = (...args: any[]) => any;

interface Waiter {
  fd: number;
  resolve: (ready: boolean) => void;
  timer?: ReturnType<typeof setTimeout>;
}

/**
 * The ring the worker hands tags over in (an `Int32Array` over a `SharedArrayBuffer`): the count of tags it has
 * published at PUBLISHED, the count the main thread has taken at TAKEN (both wrap at 2^32), RING_SIZE tags from
 * RING. The worker waits (`Atomics.wait` on TAKEN) while the ring is full.
 */
const PUBLISHED = 0, TAKEN = 1, RING = 2, RING_SIZE = 256, RING_MASK = RING_SIZE - 1;

/**
 * The worker thread's whole program: blocks in `epoll_wait` on the epoll fd it is sent, puts each ready event's
 * tag in the ring, publishes the new count and wakes the main thread's `Atomics.waitAsync` on it.
 */
const WORKER_SOURCE = `import { dlopen, FFIType as T } from "bun:ffi";
const { epoll_wait } = dlopen("libc.so.6", { epoll_wait: { args: [T.i32, T.ptr, T.i32, T.i32], returns: T.i32 } }).symbols;
onmessage = (e) => {
  const { ep, shared } = e.data, w = new Int32Array(shared);
  const buf = new Uint8Array(${EPOLL_EVENT_SIZE} * 64), view = new DataView(buf.buffer);
  for (;;) {
    const n = epoll_wait(ep, buf, 64, -1); // int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout)
    let published = Atomics.load(w, ${PUBLISHED});
    for (let i = 0; i < n; i++) {
      let taken = Atomics.load(w, ${TAKEN});
      while (((published - taken) >>> 0) >= ${RING_SIZE}) { // full: wait for the main thread to take some
        Atomics.wait(w, ${TAKEN}, taken);
        taken = Atomics.load(w, ${TAKEN});
      }
      w[${RING} + (published & ${RING_MASK})] = view.getUint32(i * ${EPOLL_EVENT_SIZE} + ${EPOLL_DATA_OFFSET}, true);
      published = (published + 1) | 0;
      Atomics.store(w, ${PUBLISHED}, published);
    }
    if (n > 0) Atomics.notify(w, ${PUBLISHED});
  }
};
`;

/** What the main thread holds once the worker runs. */
interface WorkerState {
  ep: number;
  worker: Worker & { ref(): void; unref(): void };
  ctl: Record<string, Fn>;
  event: Uint8Array;
  /** The ring (see PUBLISHED). */
  ring: Int32Array;
  /** Tags taken from the ring so far (the main thread's copy of TAKEN). */
  taken: number;
  /** Whether an `Atomics.waitAsync` on PUBLISHED is pending. */
  armed: boolean;
}

let state: WorkerState | undefined;
const waiters = new Map<number, Waiter>();
let nextTag = 1;

function start(): WorkerState {
  const ctl = dlopen("libc.so.6", symbols).symbols as Record<string, Fn>;
  const ep = ctl.epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) throw new Error("epoll_create1 failed");
  const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
  const worker = new Worker(url) as Worker & { ref(): void; unref(): void }; // one per process: the URL is kept
  const ring = new Int32Array(new SharedArrayBuffer((RING + RING_SIZE) * 4));
  worker.postMessage({ ep, shared: ring.buffer });
  worker.unref();
  const event = new Uint8Array(EPOLL_EVENT_SIZE);
  return { ep, worker, ctl, event, ring, taken: 0, armed: false };
}

/** Finishes every waiter whose tag the worker published since the last look, then waits again if any are left. */
function take(s: WorkerState): void {
  const published = Atomics.load(s.ring, PUBLISHED);
  if (published !== s.taken) {
    for (; s.taken !== published; s.taken = (s.taken + 1) | 0) finish(s.ring[RING + (s.taken & RING_MASK)], true);
    Atomics.store(s.ring, TAKEN, s.taken);
    Atomics.notify(s.ring, TAKEN); // a worker waiting on a full ring
  }
  arm(s);
}

/** Keeps one `Atomics.waitAsync` on the published count pending while anyone waits. */
function arm(s: WorkerState): void {
  if (s.armed || waiters.size === 0) return;
  const r = Atomics.waitAsync(s.ring, PUBLISHED, s.taken);
  if (!r.async) return take(s); // published meanwhile
  s.armed = true;
  r.value.then(() => {
    s.armed = false;
    take(s);
  });
}

function finish(tag: number, ready: boolean): void {
  const w = waiters.get(tag);
  if (!w || !state) return;
  waiters.delete(tag);
  if (w.timer !== undefined) clearTimeout(w.timer);
  if (!ready) state.ctl.epoll_ctl(state.ep, EPOLL_CTL_DEL, w.fd, null);
  if (waiters.size === 0) state.worker.unref(); // a pending waitAsync keeps no process alive (tested)
  w.resolve(ready);
}

/** Resolves `true` when `fd` becomes readable, `false` after `timeoutMs` (negative: never times out). */
export function waitReadableInWorker(fd: number, timeoutMs: number): Promise<boolean> {
  state ??= start();
  const s = state;
  const tag = nextTag++;
  if (nextTag > 0x7fffffff) nextTag = 1;
  return new Promise<boolean>((resolve) => {
    const w: Waiter = { fd, resolve };
    waiters.set(tag, w);
    epollEvent(EPOLLIN | EPOLLONESHOT, tag, s.event);
    // One registration per fd at a time: a stale one (from a timed-out wait) is replaced.
    s.ctl.epoll_ctl(s.ep, EPOLL_CTL_DEL, fd, null);
    if (s.ctl.epoll_ctl(s.ep, EPOLL_CTL_ADD, fd, s.event) < 0) {
      waiters.delete(tag);
      resolve(false);
      return;
    }
    s.worker.ref();
    if (timeoutMs >= 0) w.timer = setTimeout(() => finish(tag, false), timeoutMs);
    arm(s);
  });
}
