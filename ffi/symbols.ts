/**
 * Every libc symbol vfio-ts calls, once, with its C prototype, in neutral C types; `ffi/deno.ts` and `ffi/bun.ts`
 * map the types to their runtime's FFI types (`denoSymbols()` here, `bunType` there).
 *
 * - `ptr`: an address held as a number (`void *` given or returned as such);
 * - `buf`: a JavaScript buffer passed as a pointer (`const char *`, `void *buf`, `struct ... *`);
 * - `i32` `u32` `i64` `u64`: fixed-width integers; `isize`/`usize`: `ssize_t`/`size_t`.
 *
 * An entry with `symbol` is a second signature of that symbol (Bun needs its own `dlopen` for it); an entry with
 * `nonblocking` runs on Deno's FFI thread pool and is left out under Bun.
 *
 * ```ts
 * import { LIBC } from "./symbols.ts";
 * console.log(LIBC.pread.args); // ["i32", "buf", "usize", "i64"]
 * ```
 * @module
 */

/** A C type in the table's neutral names. */
export type CType = "i32" | "u32" | "i64" | "u64" | "isize" | "usize" | "ptr" | "buf";

/** One libc function: its argument and result types, and optionally the symbol it is a second signature of. */
export interface CFunction {
  /** The argument types. */
  readonly args: readonly CType[];
  /** The result type. */
  readonly returns: CType;
  /** The libc symbol, when the entry's name is a second signature (`ioctl_value` of `ioctl`). */
  readonly symbol?: string;
  /** Run off the JS thread (Deno only: the call returns a Promise). */
  readonly nonblocking?: boolean;
}

/** The libc table. */
export const LIBC = {
  /** int open(const char *pathname, int flags, mode_t mode); */
  open: { args: ["buf", "i32", "u32"], returns: "i32" },
  /** int close(int fd); */
  close: { args: ["i32"], returns: "i32" },
  /** int ioctl(int fd, unsigned long request, void *arg);  (variadic, called with a fixed pointer argument) */
  ioctl: { args: ["i32", "u32", "buf"], returns: "i32" },
  /** int ioctl(int fd, unsigned long request, unsigned long value);  (the integer-argument form) */
  ioctl_value: { symbol: "ioctl", args: ["i32", "u32", "u64"], returns: "i32" },
  /** void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset); */
  mmap: { args: ["ptr", "usize", "i32", "i32", "i32", "i64"], returns: "ptr" },
  /** int munmap(void *addr, size_t length); */
  munmap: { args: ["ptr", "usize"], returns: "i32" },
  /** int madvise(void *addr, size_t length, int advice); */
  madvise: { args: ["ptr", "usize", "i32"], returns: "i32" },
  /** int mlock(const void *addr, size_t len); */
  mlock: { args: ["ptr", "usize"], returns: "i32" },
  /** int munlock(const void *addr, size_t len); */
  munlock: { args: ["ptr", "usize"], returns: "i32" },
  /** int eventfd(unsigned int initval, int flags); */
  eventfd: { args: ["u32", "i32"], returns: "i32" },
  /**
   * int eventfd_read(int fd, eventfd_t *value);  (glibc's read(2) of the 8-byte counter: 0, or -1 and errno. An `int`
   * result where read's is `ssize_t`: under Deno a 64-bit result comes back as a BigInt, on the wake-up path.)
   */
  eventfd_read: { args: ["i32", "buf"], returns: "i32" },
  /** int memfd_create(const char *name, unsigned int flags); */
  memfd_create: { args: ["buf", "u32"], returns: "i32" },
  /** int ftruncate(int fd, off_t length); */
  ftruncate: { args: ["i32", "i64"], returns: "i32" },
  /** int pipe2(int pipefd[2], int flags); */
  pipe2: { args: ["buf", "i32"], returns: "i32" },
  /** ssize_t read(int fd, void *buf, size_t count); */
  read: { args: ["i32", "buf", "usize"], returns: "isize" },
  /** ssize_t write(int fd, const void *buf, size_t count); */
  write: { args: ["i32", "buf", "usize"], returns: "isize" },
  /** ssize_t pread(int fd, void *buf, size_t count, off_t offset); */
  pread: { args: ["i32", "buf", "usize", "i64"], returns: "isize" },
  /** ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset); */
  pwrite: { args: ["i32", "buf", "usize", "i64"], returns: "isize" },
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout); */
  poll: { args: ["buf", "u64", "i32"], returns: "i32" },
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout);  (Deno: on the FFI thread pool, returns a Promise) */
  poll_async: { symbol: "poll", args: ["buf", "u64", "i32"], returns: "i32", nonblocking: true },
  /** int epoll_create1(int flags); */
  epoll_create1: { args: ["i32"], returns: "i32" },
  /** int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event); */
  epoll_ctl: { args: ["i32", "i32", "i32", "buf"], returns: "i32" },
  /** int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout); */
  epoll_wait: { args: ["i32", "buf", "i32", "i32"], returns: "i32" },
  /** long sysconf(int name); */
  sysconf: { args: ["i32"], returns: "i64" },
  /** uid_t getuid(void); */
  getuid: { args: [], returns: "u32" },
  /** uid_t geteuid(void); */
  geteuid: { args: [], returns: "u32" },
  /** pid_t getpid(void); */
  getpid: { args: [], returns: "i32" },
  /** int getrlimit(int resource, struct rlimit *rlim); */
  getrlimit: { args: ["i32", "buf"], returns: "i32" },
  /** int flock(int fd, int operation); */
  flock: { args: ["i32", "i32"], returns: "i32" },
  /** int fcntl(int fd, int cmd, ... /* int arg *\/); (F_GETFL, F_SETFL: an int or nothing) */
  fcntl: { args: ["i32", "i32", "i32"], returns: "i32" },
  /** int *__errno_location(void); */
  __errno_location: { args: [], returns: "ptr" },
} as const satisfies Record<string, CFunction>;

/** The Deno FFI type of a neutral C type. */
export type DenoType<T extends CType> = T extends "ptr" ? "pointer" : T extends "buf" ? "buffer" : T;

type DenoArgs<A extends readonly CType[]> = { readonly [I in keyof A]: A[I] extends CType ? DenoType<A[I]> : never };

type DenoSymbol<F extends CFunction> = {
  readonly name?: string;
  readonly parameters: DenoArgs<F["args"]>;
  readonly result: DenoType<F["returns"]>;
  readonly nonblocking: F extends { readonly nonblocking: true } ? true : false;
};

/** The libc table as `Deno.dlopen` takes it (types follow the table, so the symbols stay typed). */
export type DenoSymbols = { readonly [K in keyof typeof LIBC]: DenoSymbol<typeof LIBC[K]> };

const denoType = (t: CType): string => t === "ptr" ? "pointer" : t === "buf" ? "buffer" : t;

/** Builds the Deno declaration of every entry of {@linkcode LIBC}. */
export function denoSymbols(): DenoSymbols {
  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(LIBC) as [string, CFunction][]) {
    out[key] = {
      ...(f.symbol ? { name: f.symbol } : {}),
      parameters: f.args.map(denoType),
      result: denoType(f.returns),
      nonblocking: f.nonblocking === true,
    };
  }
  return out as DenoSymbols;
}
