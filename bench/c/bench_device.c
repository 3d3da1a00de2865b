/*
 * The C side of the host benchmarks (bench/host.ts), built at bench time into a shared object and called through
 * FFI so that C and TypeScript run in the same process on the same memory:
 * - P1: volatile load/store loops (the C baseline of register access) and a delayed writer thread (hoisting demo);
 * - P2: a memory-simulated NIC (a thread that fills RX descriptors and completes TX descriptors in shared memory,
 *   as a NIC's DMA engine would) and the C reference of the RX -> TX forwarding loop the TypeScript drivers run;
 * - P4: one pread of /proc/self/pagemap per address lookup (what DPDK's rte_mem_virt2phy does).
 * The layout constants below are mirrored in bench/nic_sim.ts.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* CPU time of the calling thread: P2 counts what the driver spends, not the time it is descheduled. */
double thread_cpu_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

/* ---- P1 ---- */

/* n volatile 32-bit loads cycling over 64 words; returns ns per load. */
double c_read_ns(const volatile uint32_t *p, uint32_t n) {
  uint32_t sum = 0;
  uint64_t t0 = now_ns();
  for (uint32_t i = 0; i < n; i++) sum += p[i & 63];
  uint64_t t1 = now_ns();
  __asm__ __volatile__("" ::"r"(sum));
  return (double)(t1 - t0) / n;
}

/* n volatile 32-bit stores cycling over 64 words; returns ns per store. */
double c_write_ns(volatile uint32_t *p, uint32_t n) {
  uint64_t t0 = now_ns();
  for (uint32_t i = 0; i < n; i++) p[i & 63] = i;
  return (double)(now_ns() - t0) / n;
}

struct delayed { volatile uint32_t *p; uint32_t v, us; };
static void *delayed_main(void *a) {
  struct delayed *d = a;
  usleep(d->us);
  *d->p = d->v;
  free(d);
  return NULL;
}
/* A detached thread writes v to *p after us microseconds. */
int start_delayed_writer(volatile uint32_t *p, uint32_t v, uint32_t us) {
  struct delayed *d = malloc(sizeof *d);
  d->p = p, d->v = v, d->us = us;
  pthread_t t;
  int r = pthread_create(&t, NULL, delayed_main, d);
  if (r == 0) pthread_detach(t);
  return r;
}

/* ---- P2: the simulated NIC ---- */

enum {
  REG_RDH = 0x00, REG_RDT = 0x40, REG_TDH = 0x80, REG_TDT = 0xc0, REG_STOP = 0x100,
  RX_RING = 0x1000, TX_RING = 0x3000, RING_SIZE = 512, DESC = 16,
  BUFS = 0x10000, BUF_SIZE = 2048, NBUFS = 2048,
  PKT_LEN = 60, DD = 1, EOP = 2, CMD_EOP = 1, CMD_RS = 8,
};
/* Descriptor: u64 buffer offset @0; u32 @8: length (low 16) | cmd << 24 (TX); u32 @12: status (DD bit 0). */
#define U32(b, off) (*(volatile uint32_t *)((b) + (off)))
#define U64(b, off) (*(volatile uint64_t *)((b) + (off)))
#define RELEASE() __asm__ __volatile__("" ::: "memory")

static pthread_t nic_thread;
static void *nic_main(void *a) {
  volatile char *m = a;
  uint32_t rx = 0, tx = 0, seq = 0;
  while (!U32(m, REG_STOP)) {
    uint32_t rdt = U32(m, REG_RDT), moved = 0;
    while (rx != rdt) { /* the device owns RDH .. RDT-1: "receive" a frame into each */
      volatile char *d = m + RX_RING + rx * DESC;
      U32(m, (uint32_t)U64(d, 0)) = seq++;
      U32(d, 8) = PKT_LEN;
      RELEASE();
      U32(d, 12) = DD | EOP;
      rx = rx + 1 == RING_SIZE ? 0 : rx + 1;
      moved = 1;
    }
    if (moved) U32(m, REG_RDH) = rx;
    uint32_t tdt = U32(m, REG_TDT);
    moved = 0;
    while (tx != tdt) { /* "transmit": read the descriptor and the frame's first word, then write back DD */
      volatile char *d = m + TX_RING + tx * DESC;
      uint32_t len = U32(d, 8) & 0xffff;
      uint32_t word = U32(m, (uint32_t)U64(d, 0));
      __asm__ __volatile__("" ::"r"(len), "r"(word));
      U32(d, 12) = DD;
      tx = tx + 1 == RING_SIZE ? 0 : tx + 1;
      moved = 1;
    }
    if (moved) U32(m, REG_TDH) = tx;
  }
  return NULL;
}
int nic_start(char *m) {
  U32(m, REG_STOP) = 0;
  return pthread_create(&nic_thread, NULL, nic_main, m);
}
void nic_stop(char *m) {
  U32(m, REG_STOP) = 1;
  pthread_join(nic_thread, NULL);
}

/*
 * The C reference driver: the same RX -> TX forwarding loop as bench/nic_sim.ts (ixy's fwd shape: RX batch, touch
 * each frame, TX batch, recycle sent buffers), on a ring the caller set up. Returns the driver thread's busy CPU
 * time in ns for `packets`: CPU time, so that time the thread is descheduled on a loaded machine does not count,
 * minus the stretches spent polling an empty RX ring (waiting for the device thread), timed where they start and end.
 */
double c_forward(char *mm, uint32_t batch, uint32_t packets) {
  volatile char *m = mm;
  static uint32_t pool[NBUFS], rx_buf[RING_SIZE], tx_buf[RING_SIZE], pkt[RING_SIZE];
  uint32_t npool = 0, rx = 0, tx = 0, clean = 0, done = 0;
  uint64_t idle = 0, idle_since = 0;
  /* nic_sim.ts put buffers 0 .. RING_SIZE-1 on the RX ring; the rest start in the pool. */
  for (uint32_t i = RING_SIZE; i < NBUFS; i++) pool[npool++] = BUFS + i * BUF_SIZE;
  for (uint32_t i = 0; i < RING_SIZE; i++) rx_buf[i] = BUFS + i * BUF_SIZE;
  uint64_t t0 = (uint64_t)thread_cpu_ns();
  while (done < packets) {
    uint32_t n = 0;
    while (n < batch) {
      volatile char *d = m + RX_RING + rx * DESC;
      if (!(U32(d, 12) & DD)) break;
      uint32_t len = U32(d, 8) & 0xffff, nb = pool[--npool];
      __asm__ __volatile__("" ::"r"(len));
      pkt[n++] = rx_buf[rx]; /* the driver's own record of each slot's buffer, as in ixy */
      rx_buf[rx] = nb;
      U32(d, 0) = nb, U32(d, 4) = 0; /* re-arm: new buffer, status cleared */
      U32(d, 12) = 0;
      rx = rx + 1 == RING_SIZE ? 0 : rx + 1;
    }
    if (n == 0) {
      if (!idle_since) idle_since = (uint64_t)thread_cpu_ns();
      continue;
    }
    if (idle_since) idle += (uint64_t)thread_cpu_ns() - idle_since, idle_since = 0;
    U32(m, REG_RDT) = rx == 0 ? RING_SIZE - 1 : rx - 1;
    for (uint32_t i = 0; i < n; i++) U32(m, pkt[i]) += 1;
    while (clean != tx && (U32(m + TX_RING + clean * DESC, 12) & DD)) {
      pool[npool++] = tx_buf[clean];
      clean = clean + 1 == RING_SIZE ? 0 : clean + 1;
    }
    for (uint32_t i = 0; i < n; i++) {
      uint32_t next = tx + 1 == RING_SIZE ? 0 : tx + 1;
      if (next == clean) { pool[npool++] = pkt[i]; continue; } /* ring full: drop */
      volatile char *d = m + TX_RING + tx * DESC;
      U32(d, 0) = pkt[i], U32(d, 4) = 0;
      U32(d, 8) = PKT_LEN | (uint32_t)(CMD_EOP | CMD_RS) << 24;
      U32(d, 12) = 0;
      tx_buf[tx] = pkt[i];
      tx = next;
    }
    RELEASE();
    U32(m, REG_TDT) = tx;
    done += n;
  }
  return (double)((uint64_t)thread_cpu_ns() - t0 - idle);
}

/* ---- P4 ---- */

/* n lookups of the physical address of addr + (i * 2056 mod span) with one pread of pagemap each; ns per lookup. */
double c_pagemap_ns(uint64_t addr, uint32_t span, uint32_t n) {
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  uint64_t sum = 0, e;
  long page = sysconf(_SC_PAGESIZE);
  uint64_t t0 = now_ns();
  for (uint32_t i = 0; i < n; i++) {
    uint64_t va = addr + (uint64_t)i * 2056 % span;
    if (pread(fd, &e, 8, (off_t)(va / page * 8)) != 8) { close(fd); return -1; }
    sum ^= (e & ((1ull << 55) - 1)) * page + va % page;
  }
  uint64_t t1 = now_ns();
  close(fd);
  __asm__ __volatile__("" ::"r"(sum));
  return (double)(t1 - t0) / n;
}
