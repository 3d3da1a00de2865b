/*
 * vfio-ts busy-poll helper: the one piece of vfio-ts written in C. Only the hot path of a polling driver lives
 * here: spinning on a register or descriptor field until it matches, and counting how many descriptors of a ring
 * a device has completed. Everything else (setup, rings, buffers) stays in TypeScript.
 *
 * The one exception is a NIC queue's per-descriptor RX refill and TX post (vfio_ts_rx_refill, vfio_ts_tx_post):
 * one call per batch stores what a batch of descriptors needs, on tables the TypeScript side keeps in the same
 * shared memory, so that a driver's per-packet work in JavaScript is only its own.
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

#define VFIO_TS_POLL_ABI 3
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

/*
 * A NIC queue pair prepared by lib/poll.ts (Poller.queue): a block of u32 words in the mapping at `base`, at byte
 * offset `state`, that both sides read and write (the TypeScript side between calls). Buffers are numbered
 * 0 .. buffer_count-1; buffer i's header is at buffers + i * buffer_size: u64 bus address of the header @0, u32
 * frame length @12 (written here on RX, read on TX); the frame starts at the header + headroom, which is the bus
 * address given to the device. Descriptors are 16 bytes: read format u64 buffer address @0, u64 0 @8 (RX) or
 * u32 cmd_type_len (tx_cmd | length) @8 and u32 (length << tx_len_shift) @12 (TX); the device writes back the RX
 * status word (done bit, end-of-packet bit) and length (low 16 bits of a u32), and the TX done bit (bit 0 @12).
 */
enum {
  Q_RX_RING, Q_TX_RING, Q_RING_SIZE, Q_BUFFERS, Q_BUFFER_SIZE, Q_BUFFER_COUNT, Q_HEADROOM, Q_TX_CMD,
  Q_TX_LEN_SHIFT, Q_TX_CLEAN_BATCH, Q_RX_STATUS, Q_RX_LENGTH, Q_RX_DONE, Q_RX_EOP,
  Q_RX_HEAD, Q_TX_TAIL, Q_TX_CLEAN, Q_FREE_TOP, Q_WORDS = 32,
};
/* What vfio_ts_rx_refill ORs into its count when it stopped at a frame without end-of-packet (multi-descriptor). */
#define VFIO_TS_RX_NOT_EOP 0x80000000u

/* The queue block at base + state, or NULL when it or anything it describes is not inside the `limit` bytes. */
static volatile uint32_t *queue_ok(const volatile void *base, uint32_t limit, uint32_t state) {
  if (((uintptr_t)base & 7) != 0 || (state & 3) != 0 || (uint64_t)state + Q_WORDS * 4 > limit) return 0;
  volatile uint32_t *q = (volatile uint32_t *)((volatile char *)base + state);
  uint64_t ring = q[Q_RING_SIZE], count = q[Q_BUFFER_COUNT], size = q[Q_BUFFER_SIZE];
  if (ring == 0 || count == 0 || (q[Q_RX_RING] & 15) || (q[Q_TX_RING] & 15) || (q[Q_BUFFERS] & 7) || (size & 7) ||
      q[Q_HEADROOM] < 16 || q[Q_HEADROOM] >= size || q[Q_RX_STATUS] > 12 || (q[Q_RX_STATUS] & 3) ||
      q[Q_RX_LENGTH] > 12 || (q[Q_RX_LENGTH] & 3) || q[Q_TX_CLEAN_BATCH] == 0 || q[Q_TX_CLEAN_BATCH] > ring ||
      q[Q_TX_LEN_SHIFT] > 31 || q[Q_RX_HEAD] >= ring || q[Q_TX_TAIL] >= ring || q[Q_TX_CLEAN] >= ring ||
      q[Q_FREE_TOP] > count || (uint64_t)q[Q_RX_RING] + ring * 16 > limit || (uint64_t)q[Q_TX_RING] + ring * 16 > limit ||
      (uint64_t)q[Q_BUFFERS] + count * size > limit || (uint64_t)state + (Q_WORDS + count + 3 * ring) * 4 > limit) {
    return 0;
  }
  return q;
}

/*
 * RX: takes up to `budget` received frames from the RX head (each descriptor's done bit set), stores each frame's
 * length in its buffer header, re-arms the slot with a buffer popped from the free stack (its bus address +
 * headroom) and lists the received buffers in frames[0 .. n). Stops early at a descriptor not done, when the free
 * stack is empty, or at a frame without end-of-packet (then VFIO_TS_RX_NOT_EOP is ORed into the count). Advances
 * the RX head; the caller writes the tail register (the last re-armed slot is head - 1). Returns n, or
 * VFIO_TS_POLL_REFUSED (nothing read or written) for a block that does not fit, and stops at a table entry naming
 * no buffer. Descriptor fields read after the status are ordered after it.
 */
EXPORT uint32_t vfio_ts_rx_refill(volatile void *base, uint32_t limit, uint32_t state, uint32_t budget) {
  volatile uint32_t *q = queue_ok(base, limit, state);
  if (!q) return VFIO_TS_POLL_REFUSED;
  volatile char *m = (volatile char *)base;
  uint32_t ring = q[Q_RING_SIZE], count = q[Q_BUFFER_COUNT], size = q[Q_BUFFER_SIZE], bufs = q[Q_BUFFERS];
  uint32_t headroom = q[Q_HEADROOM], st = q[Q_RX_STATUS], len_at = q[Q_RX_LENGTH], done = q[Q_RX_DONE];
  uint32_t eop = q[Q_RX_EOP], head = q[Q_RX_HEAD], top = q[Q_FREE_TOP], n = 0, flag = 0;
  volatile uint32_t *free_stack = q + Q_WORDS, *rx_bufs = free_stack + count, *frames = rx_bufs + 2 * ring;
  volatile char *rx = m + q[Q_RX_RING];
  if (budget > ring) budget = ring;
  for (; n < budget && top > 0; n++) {
    volatile char *d = rx + (uint64_t)head * 16;
    uint32_t status = *(volatile uint32_t *)(d + st);
    if (!done || (status & done) != done) break;
    IO_RMB();
    if ((status & eop) != eop) { flag = VFIO_TS_RX_NOT_EOP; break; }
    uint32_t b = rx_bufs[head], nb = free_stack[top - 1];
    if (b >= count || nb >= count) break;
    volatile char *h = m + bufs + (uint64_t)b * size, *nh = m + bufs + (uint64_t)nb * size;
    *(volatile uint32_t *)(h + 12) = *(volatile uint32_t *)(d + len_at) & 0xffff;
    uint64_t bus = *(volatile uint64_t *)nh + headroom;
    *(volatile uint32_t *)d = (uint32_t)bus;
    *(volatile uint32_t *)(d + 4) = (uint32_t)(bus >> 32);
    *(volatile uint64_t *)(d + 8) = 0;
    top--;
    rx_bufs[head] = nb;
    frames[n] = b;
    head = head + 1 == ring ? 0 : head + 1;
  }
  q[Q_RX_HEAD] = head;
  q[Q_FREE_TOP] = top;
  return n | flag;
}

/*
 * TX: first frees the buffers of whole groups of tx_clean_batch sent descriptors (one done-bit read per group, at
 * its last descriptor) onto the free stack, then queues frames[first .. first + n) from the TX tail (bus address +
 * headroom, length from the header) up to the slot before the clean position, and pushes the frames that did not
 * fit back on the free stack. Advances the tail (the caller writes it to the tail register after vfio_ts_io_wmb).
 * Returns how many it queued, or VFIO_TS_POLL_REFUSED (nothing read or written) for a block that does not fit or
 * first + n past the frame list.
 */
EXPORT uint32_t vfio_ts_tx_post(volatile void *base, uint32_t limit, uint32_t state, uint32_t first, uint32_t n) {
  volatile uint32_t *q = queue_ok(base, limit, state);
  if (!q) return VFIO_TS_POLL_REFUSED;
  uint32_t ring = q[Q_RING_SIZE], count = q[Q_BUFFER_COUNT], size = q[Q_BUFFER_SIZE], bufs = q[Q_BUFFERS];
  if ((uint64_t)first + n > ring) return VFIO_TS_POLL_REFUSED;
  volatile char *m = (volatile char *)base, *tx = m + q[Q_TX_RING];
  uint32_t headroom = q[Q_HEADROOM], cmd = q[Q_TX_CMD], shift = q[Q_TX_LEN_SHIFT], group = q[Q_TX_CLEAN_BATCH];
  uint32_t tail = q[Q_TX_TAIL], clean = q[Q_TX_CLEAN], top = q[Q_FREE_TOP], sent = 0;
  volatile uint32_t *free_stack = q + Q_WORDS, *tx_bufs = free_stack + count + ring, *frames = tx_bufs + ring + first;
  for (;;) {
    uint32_t cleanable = tail >= clean ? tail - clean : tail + ring - clean;
    if (cleanable < group) break;
    uint32_t to = clean + group - 1;
    if (to >= ring) to -= ring;
    if (!(*(volatile uint32_t *)(tx + (uint64_t)to * 16 + 12) & 1)) break;
    for (uint32_t i = clean;; i = i + 1 == ring ? 0 : i + 1) {
      if (top < count) free_stack[top++] = tx_bufs[i];
      if (i == to) break;
    }
    clean = to + 1 == ring ? 0 : to + 1;
  }
  for (; sent < n; sent++) {
    uint32_t next = tail + 1 == ring ? 0 : tail + 1, b = frames[sent];
    if (next == clean || b >= count) break;
    volatile char *h = m + bufs + (uint64_t)b * size, *d = tx + (uint64_t)tail * 16;
    uint32_t len = *(volatile uint32_t *)(h + 12) & 0xffff;
    uint64_t bus = *(volatile uint64_t *)h + headroom;
    *(volatile uint32_t *)d = (uint32_t)bus;
    *(volatile uint32_t *)(d + 4) = (uint32_t)(bus >> 32);
    *(volatile uint32_t *)(d + 8) = cmd | len;
    *(volatile uint32_t *)(d + 12) = len << shift;
    tx_bufs[tail] = b;
    tail = next;
  }
  for (uint32_t i = sent; i < n; i++) if (top < count && frames[i] < count) free_stack[top++] = frames[i];
  q[Q_TX_TAIL] = tail;
  q[Q_TX_CLEAN] = clean;
  q[Q_FREE_TOP] = top;
  return sent;
}
