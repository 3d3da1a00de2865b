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
 * Built by tools/build-helper.sh for x86_64 and aarch64 and embedded in ffi/poll_helper_blob.ts; ffi/poll_helper.ts
 * loads it from there through a memfd.
 */
#include <stdint.h>

#define VFIO_TS_POLL_ABI 2
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

/* What vfio_ts_ring_ready returns for arguments it refuses (never a count: a valid ring has < 2^30 descriptors). */
#define VFIO_TS_POLL_REFUSED UINT32_MAX

/*
 * Every function is given the length of the mapping at base (`limit`, bytes) and touches nothing outside it: a call
 * with a field past the end, a misaligned field or base, or a ring whose arithmetic overflows is refused without a
 * single read. All arithmetic on offsets is done in 64 bits on 32-bit inputs, so it cannot wrap.
 */
static int field_ok(const volatile void *base, uint32_t limit, uint32_t offset, uint32_t width) {
  return ((uintptr_t)base & (width - 1)) == 0 && (offset & (width - 1)) == 0 &&
         (uint64_t)offset + width <= (uint64_t)limit;
}

/*
 * Reads the 32-bit field at base + offset up to max_spins times (at least once) until (value & mask) == want.
 * Returns the last value read: the caller tells a match from a timeout by testing it again. Returns 0 without
 * reading when the field is not an aligned u32 inside the `limit` bytes at base.
 */
EXPORT uint32_t vfio_ts_spin32(const volatile void *base, uint32_t limit, uint32_t offset, uint32_t mask,
                               uint32_t want, uint32_t max_spins) {
  if (!field_ok(base, limit, offset, 4)) return 0;
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
EXPORT uint64_t vfio_ts_spin64(const volatile void *base, uint32_t limit, uint32_t offset, uint64_t mask,
                               uint64_t want, uint32_t max_spins) {
  if (!field_ok(base, limit, offset, 8)) return 0;
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
 * The batched descriptor-ring walk. A ring of ring_size descriptors of `stride` bytes; descriptor i's 32-bit status
 * word is at base + status_offset + i * stride. Spins up to max_spins reads on descriptor `head` until it is done
 * ((status & mask) == want), then counts the consecutive done descriptors from head (wrapping), at most `budget`.
 * Returns that count (0: nothing completed within the spin budget). Descriptor contents read after the call are
 * ordered after the status reads. Refuses (VFIO_TS_POLL_REFUSED, nothing read) a zero or misaligned stride or
 * status offset, a head outside the ring, or a ring whose last status word ends past `limit`.
 */
EXPORT uint32_t vfio_ts_ring_ready(const volatile void *base, uint32_t limit, uint32_t stride, uint32_t status_offset,
                                   uint32_t ring_size, uint32_t head, uint32_t mask, uint32_t want, uint32_t budget,
                                   uint32_t max_spins) {
  if (ring_size == 0 || head >= ring_size || stride < 4 || (stride & 3) != 0 ||
      !field_ok(base, limit, status_offset, 4) ||
      (uint64_t)status_offset + (uint64_t)(ring_size - 1) * stride + 4 > (uint64_t)limit) {
    return VFIO_TS_POLL_REFUSED;
  }
  if (budget == 0) return 0;
  if (budget > ring_size) budget = ring_size;
  const volatile char *ring = (const volatile char *)base + status_offset;
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
