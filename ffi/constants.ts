/**
 * Flag values of the libc calls in `ffi/types.ts` (Linux; the same on x86_64 and aarch64 unless noted).
 * Exercised through real system calls by `tests/unit/ffi.test.ts` (not compared with the C headers).
 *
 * ```ts
 * import { O_CLOEXEC, O_RDWR } from "./constants.ts";
 * const flags = O_RDWR | O_CLOEXEC;
 * ```
 *
 * @module
 */

/** open(2): read only. */
export const O_RDONLY = 0;
/** open(2): write only. */
export const O_WRONLY = 1;
/** open(2): read and write. */
export const O_RDWR = 2;
/** open(2) of a block device: fail with EBUSY if it is claimed (mounted, swap, held); create exclusively with O_CREAT. */
export const O_EXCL = 0o200;
/** open(2): non-blocking. */
export const O_NONBLOCK = 0o4000;
/** fcntl(2): get the open file's status flags (O_NONBLOCK, ...). */
export const F_GETFL = 3;
/** fcntl(2): set the open file's status flags. */
export const F_SETFL = 4;
/** open(2): close on exec. */
export const O_CLOEXEC = 0o2000000;
/** mmap(2): pages may be read. */
export const PROT_READ = 1;
/** mmap(2): pages may be written. */
export const PROT_WRITE = 2;
/** mmap(2): shared mapping. */
export const MAP_SHARED = 0x01;
/** mmap(2): private copy-on-write mapping. */
export const MAP_PRIVATE = 0x02;
/** mmap(2): place the mapping exactly at the given address. */
export const MAP_FIXED = 0x10;
/** mmap(2): not backed by a file. */
export const MAP_ANONYMOUS = 0x20;
/** mmap(2): reserve no swap space. */
export const MAP_NORESERVE = 0x4000;
/** mmap(2): lock the pages (like mlock). */
export const MAP_LOCKED = 0x2000;
/** mmap(2): pre-fault the pages. */
export const MAP_POPULATE = 0x8000;
/** mmap(2): use huge pages. */
export const MAP_HUGETLB = 0x40000;
/** mmap(2): the shift of the huge page size (log2) in the flags. */
export const MAP_HUGE_SHIFT = 26;
/** madvise(2): do not copy this range into a child on fork. */
export const MADV_DONTFORK = 10;
/** eventfd(2): non-blocking reads. */
export const EFD_NONBLOCK = 0o4000;
/** eventfd(2): close on exec. */
export const EFD_CLOEXEC = 0o2000000;
/** memfd_create(2): close on exec. */
export const MFD_CLOEXEC = 1;
/** memfd_create(2): executable even when `vm.memfd_noexec` is 1 (Linux 6.3+; older kernels return EINVAL). */
export const MFD_EXEC = 0x10;
/** poll(2): data to read. */
export const POLLIN = 0x1;
/** poll(2): error condition. */
export const POLLERR = 0x8;
/** poll(2): hung up. */
export const POLLHUP = 0x10;
/** epoll_create1(2): close on exec. */
export const EPOLL_CLOEXEC = 0o2000000;
/** epoll_ctl(2): add an fd. */
export const EPOLL_CTL_ADD = 1;
/** epoll_ctl(2): remove an fd. */
export const EPOLL_CTL_DEL = 2;
/** epoll_ctl(2): change an fd's events. */
export const EPOLL_CTL_MOD = 3;
/** epoll events: readable. */
export const EPOLLIN = 0x1;
/** epoll events: report once, then disarm. */
export const EPOLLONESHOT = 1 << 30;
/** sysconf(3): page size. */
export const SC_PAGESIZE = 30;
/** sysconf(3): online processors. */
export const SC_NPROCESSORS_ONLN = 84;
/** getrlimit(2): locked-in-memory address space. */
export const RLIMIT_MEMLOCK = 8;
/** getrlimit(2): number of open files. */
export const RLIMIT_NOFILE = 7;
/** ioctl(2) on a pipe or socket: bytes ready to read. */
export const FIONREAD = 0x541b;
/** flock(2): exclusive lock. */
export const LOCK_EX = 2;
/** flock(2): fail with EWOULDBLOCK instead of waiting. */
export const LOCK_NB = 4;
/** flock(2): release the lock. */
export const LOCK_UN = 8;
