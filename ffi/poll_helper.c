/*
 * vfio-ts busy-poll helper: the one piece of vfio-ts written in C. Only the hot path of a polling driver lives
 * here: spinning on a register or descriptor field until it matches, and counting how many descriptors of a ring
 * a device has completed. Everything else (setup, rings, buffers) stays in TypeScript.
 *
 * Why C: a JIT may hoist a plain load out of a loop (JSC does), and Atomics.load costs ~6 ns a read, while one
 * volatile load here costs what the memory costs. One FFI call replaces a whole polling loop or descriptor scan.
 *
 * Rules: every access to shared memory is a volatile load of the field's width (one access per read, never
 * merged, never hoisted); after a match an acquire barrier orders the match before any later read of the
 * descriptor (DMA data the device wrote before it set the done bit). x86-64 keeps loads in order, so there a
 * compiler barrier is enough; AArch64 needs `dmb oshld` (outer shareable: the device is an observer, as in DPDK's
 * rte_io_rmb). No libc, no global state, no allocation: built freestanding with -nostdlib, it links to nothing.
 *
 * Built by tools/build-helper.sh into ffi/prebuilt/linux-<arch>/libvfio_ts_poll.so; loaded by ffi/poll_helper.ts.
 */
#include <stdint.h>

#define VFIO_TS_POLL_ABI 1
#define EXPORT __attribute__((visibility("default")))

#if defined(__aarch64__)
#define IO_RMB() __asm__ __volatile__("dmb oshld" ::: "memory")
#define IO_WMB() __asm__ __volatile__("dmb oshst" ::: "memory")
#define CPU_RELAX() __asm__ __volatile__("yield" ::: "memory")
#elif defined(__x86_64__)
#define IO_RMB() __asm__ __volatile__("" ::: "memory")
#define IO_WMB() __asm__ __volatile__("" ::: "memory")
#define CPU_RELAX() __asm__ __volatile__("pause" ::: "memory")
#else
#error "vfio-ts poll helper: only x86-64 and AArch64 are supported"
#endif

/* The ABI version the TypeScript loader checks before binding anything else. */
EXPORT uint32_t vfio_ts_poll_abi(void) { return VFIO_TS_POLL_ABI; }

/*
 * Reads the 32-bit field at base + offset up to max_spins times (at least once) until (value & mask) == want.
 * Returns the last value read: the caller tells a match from a timeout by testing it again.
 */
EXPORT uint32_t vfio_ts_spin32(const volatile void *base, uint32_t offset, uint32_t mask, uint32_t want,
                               uint32_t max_spins) {
  const volatile uint32_t *p = (const volatile uint32_t *)((const volatile char *)base + offset);
  uint32_t v = *p;
  for (uint32_t i = 1; (v & mask) != want && i < max_spins; i++) {
    CPU_RELAX();
    v = *p;
  }
  IO_RMB();
  return v;
}

/* The same on a 64-bit field (one 8-byte load per read). */
EXPORT uint64_t vfio_ts_spin64(const volatile void *base, uint32_t offset, uint64_t mask, uint64_t want,
                               uint32_t max_spins) {
  const volatile uint64_t *p = (const volatile uint64_t *)((const volatile char *)base + offset);
  uint64_t v = *p;
  for (uint32_t i = 1; (v & mask) != want && i < max_spins; i++) {
    CPU_RELAX();
    v = *p;
  }
  IO_RMB();
  return v;
}

/*
 * The batched descriptor-ring walk. A ring of ring_size descriptors of `stride` bytes starts at base; each has a
 * 32-bit status word at status_offset. Spins up to max_spins reads on descriptor `head` until it is done
 * ((status & mask) == want), then counts the consecutive done descriptors from head (wrapping), at most `budget`.
 * Returns that count (0: nothing completed within the spin budget). Descriptor contents read after the call are
 * ordered after the status reads.
 */
EXPORT uint32_t vfio_ts_ring_ready(const volatile void *base, uint32_t stride, uint32_t status_offset,
                                   uint32_t ring_size, uint32_t head, uint32_t mask, uint32_t want, uint32_t budget,
                                   uint32_t max_spins) {
  const volatile char *ring = (const volatile char *)base + status_offset;
  if (ring_size == 0 || budget == 0 || head >= ring_size) return 0;
  if (budget > ring_size) budget = ring_size;
  const volatile uint32_t *first = (const volatile uint32_t *)(ring + (uint64_t)head * stride);
  uint32_t spins = 1;
  while ((*first & mask) != want) {
    if (spins++ >= max_spins) return 0;
    CPU_RELAX();
  }
  uint32_t n = 1, i = head + 1 == ring_size ? 0 : head + 1;
  while (n < budget && (*(const volatile uint32_t *)(ring + (uint64_t)i * stride) & mask) == want) {
    n++;
    i = i + 1 == ring_size ? 0 : i + 1;
  }
  IO_RMB();
  return n;
}

/*
 * Orders every store made before it (descriptor contents) before every store made after it (the tail-register
 * doorbell). A no-op on x86-64, whose stores are never reordered with each other; JavaScript has no such barrier.
 */
EXPORT void vfio_ts_io_wmb(void) { IO_WMB(); }
