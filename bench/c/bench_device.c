/*
 * The C side of the host benchmarks (bench/host.ts), built at bench time into a shared object and called through
 * FFI so that C and TypeScript run in the same process on the same memory:
 * - P1: volatile load/store loops (the C baseline of register access) and a delayed writer thread (hoisting demo);
 * - P2: a memory-simulated NIC (a thread that fills RX descriptors and completes TX descriptors in shared memory,
 *   as a NIC's DMA engine would) and the C reference of the RX -> TX forwarding loop the TypeScript drivers run;
 * - P3 on the host CPU: the C waiters of the wake-up designs, woken by a thread's eventfd write (no device here);
 * - P4: one pread of /proc/self/pagemap per address lookup (what DPDK's rte_mem_virt2phy does).
 * The layout constants below are mirrored in bench/nic_sim.ts.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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
static volatile double delayed_stamp;
/* CLOCK_MONOTONIC in ns (the clock the delayed writer stamps with). */
double mono_ns(void) { return (double)now_ns(); }
/* When the last delayed writer wrote (CLOCK_MONOTONIC ns, stamped just before its store). */
double delayed_stamp_ns(void) { return delayed_stamp; }
static void *delayed_main(void *a) {
  struct delayed *d = a;
  usleep(d->us);
  delayed_stamp = (double)now_ns();
  *d->p = d->v;
  free(d);
  return NULL;
}
/* A detached thread writes v to *p after us microseconds (P1 hoisting; P3 raises edu's interrupt with it). */
int start_delayed_writer(volatile uint32_t *p, uint32_t v, uint32_t us) {
  struct delayed *d = malloc(sizeof *d);
  d->p = p, d->v = v, d->us = us;
  pthread_t t;
  int r = pthread_create(&t, NULL, delayed_main, d);
  if (r == 0) pthread_detach(t);
  return r;
}

/* ---- P2: the simulated NIC, ixy-shaped ---- */

/*
 * Layout (mirrored in bench/nic_sim.ts). Registers at 0; 512-entry rings of 16-byte descriptors; 2048 buffers of
 * 2 KiB, each starting with a 64-byte header (ixy's struct pkt_buf: u64 bus address of the buffer @0, u32 mempool
 * index @8, u32 packet size @12), the frame at +64. Bus addresses are BUS_BASE + offset in the mapping, so the high
 * 32-bit word of every descriptor address is non-zero, as on a machine with more than 4 GiB.
 * RX descriptor, read format: u64 packet bus address @0, u64 header address @8 (0). Write-back: u32 length @8,
 * u32 status @12 (DD bit 0, EOP bit 1). TX descriptor: u64 bus address @0, u32 cmd_type_len @8 (length in the low
 * 16 bits), u32 olinfo_status @12 (payload length << 14), where the device writes back DD (bit 0).
 */
enum {
  REG_RDH = 0x00, REG_RDT = 0x40, REG_TDH = 0x80, REG_TDT = 0xc0, REG_STOP = 0x100,
  RX_RING = 0x1000, TX_RING = 0x3000, RING_SIZE = 512, DESC = 16,
  BUFS = 0x10000, BUF_SIZE = 2048, NBUFS = 2048, HDR = 64,
  PKT_LEN = 60, DD = 1, EOP = 2, TX_CLEAN_BATCH = 32, PAYLEN_SHIFT = 14,
};
#define BUS_BASE 0x100000000ull
/* ixgbe's advanced TX data descriptor command bits: EOP | IFCS | RS | DEXT, DTYP data. */
#define TX_CMD ((1u << 24) | (2u << 24) | (8u << 24) | (32u << 24) | (3u << 20))
#define U32(b, off) (*(volatile uint32_t *)((b) + (off)))
#define U64(b, off) (*(volatile uint64_t *)((b) + (off)))
#define RELEASE() __asm__ __volatile__("" ::: "memory")

struct nic { pthread_t thread; };
/*
 * One pass of the device over the NIC at m: "receives" a frame into each RX descriptor the driver handed over (RDH
 * up to RDT) and "transmits" each queued TX descriptor (TDH up to TDT: reads the descriptor and the frame's first
 * word, writes back DD); RDH and TDH hold its positions. Returns how many descriptors it moved. The device thread
 * runs it in a loop; bench/scaling.ts calls it inline from each worker's loop (no device thread).
 */
uint32_t nic_step(char *mm) {
  volatile char *m = mm;
  uint32_t rx = U32(m, REG_RDH), tx = U32(m, REG_TDH), seq = rx, moved = 0;
  uint32_t rdt = U32(m, REG_RDT);
  while (rx != rdt) { /* the device owns RDH .. RDT-1: "receive" a frame into each */
    volatile char *d = m + RX_RING + rx * DESC;
    U32(m, U64(d, 0) - BUS_BASE) = seq++;
    U32(d, 8) = PKT_LEN;
    RELEASE();
    U32(d, 12) = DD | EOP;
    rx = rx + 1 == RING_SIZE ? 0 : rx + 1;
    moved++;
  }
  if (moved) U32(m, REG_RDH) = rx; /* as a device thread with its positions in registers: write only on change */
  uint32_t rx_moved = moved, tdt = U32(m, REG_TDT);
  while (tx != tdt) { /* "transmit": read the descriptor and the frame's first word, then write back DD */
    volatile char *d = m + TX_RING + tx * DESC;
    uint32_t len = U32(d, 8) & 0xffff;
    uint32_t word = U32(m, U64(d, 0) - BUS_BASE);
    __asm__ __volatile__("" ::"r"(len), "r"(word));
    U32(d, 12) = DD;
    tx = tx + 1 == RING_SIZE ? 0 : tx + 1;
    moved++;
  }
  if (moved != rx_moved) U32(m, REG_TDH) = tx;
  return moved;
}
static void *nic_main(void *a) {
  char *m = a;
  while (!U32(m, REG_STOP)) nic_step(m);
  return NULL;
}
/* Starts a device thread on the NIC at m; returns a handle for nic_stop (NULL on failure). */
void *nic_start(char *m) {
  struct nic *n = malloc(sizeof *n);
  U32(m, REG_STOP) = 0;
  if (pthread_create(&n->thread, NULL, nic_main, m) != 0) { free(n); return NULL; }
  return n;
}
void nic_stop(char *m, void *handle) {
  struct nic *n = handle;
  U32(m, REG_STOP) = 1;
  pthread_join(n->thread, NULL);
  free(n);
}

/* ixy's packet buffer header, in the DMA memory in front of each frame. */
struct pkt_buf { uint64_t buf_addr_phy; uint32_t mempool_idx; uint32_t size; uint8_t pad[HDR - 16]; uint8_t data[]; };
struct mempool { char *base; uint32_t top; uint32_t stack[NBUFS]; };
static inline struct pkt_buf *pkt_alloc(struct mempool *p) {
  return (struct pkt_buf *)(p->base + BUFS + (uint64_t)p->stack[--p->top] * BUF_SIZE);
}
static inline void pkt_free(struct mempool *p, struct pkt_buf *b) { p->stack[p->top++] = b->mempool_idx; }

/*
 * The C reference driver, ixy's design on the simulated NIC (ixgbe_rx_batch, ixgbe_tx_batch and the fwd loop of
 * ixy.c): RX reads each status, stores the length in the buffer header, re-arms the slot with a buffer from the
 * mempool (64-bit bus address from its header); fwd increments a byte of each frame; TX frees completed buffers in
 * groups of TX_CLEAN_BATCH with one status read per group, queues the batch (64-bit address and size from each
 * header), one doorbell; frames that do not fit are freed. Returns the driver thread's busy CPU time in ns for
 * `packets`: CPU time, so that time the thread is descheduled on a loaded machine does not count, minus the
 * stretches spent polling an empty RX ring (waiting for the device thread).
 */
static double forward_run(char *mm, uint32_t batch, uint32_t packets, int inline_device) {
  volatile char *m = mm;
  struct mempool pool;
  struct pkt_buf *rx_bufs[RING_SIZE], *tx_bufs[RING_SIZE], *bufs[RING_SIZE];
  uint32_t rx = 0, tx = 0, clean = 0, done = 0;
  uint64_t idle = 0, idle_since = 0;
  /* nic_sim.ts wrote every header and put buffers 0 .. RING_SIZE-1 on the RX ring; the rest start in the pool. */
  pool.base = mm, pool.top = 0;
  for (uint32_t i = NBUFS; i-- > RING_SIZE;) pool.stack[pool.top++] = i;
  for (uint32_t i = 0; i < RING_SIZE; i++) rx_bufs[i] = (struct pkt_buf *)(mm + BUFS + (uint64_t)i * BUF_SIZE);
  uint64_t t0 = (uint64_t)thread_cpu_ns();
  while (done < packets) {
    if (inline_device) nic_step(mm); /* bench/scaling.ts: no device thread, its pass runs here */
    uint32_t n = 0, last = rx;
    for (; n < batch; n++) {
      volatile char *d = m + RX_RING + rx * DESC;
      uint32_t status = U32(d, 12);
      if (!(status & DD)) break;
      if (!(status & EOP)) abort();
      struct pkt_buf *b = rx_bufs[rx];
      b->size = U32(d, 8) & 0xffff;
      struct pkt_buf *nb = pkt_alloc(&pool);
      U64(d, 0) = nb->buf_addr_phy + HDR;
      U64(d, 8) = 0;
      rx_bufs[rx] = nb;
      bufs[n] = b;
      last = rx;
      rx = rx + 1 == RING_SIZE ? 0 : rx + 1;
    }
    if (n == 0) {
      if (!idle_since) idle_since = (uint64_t)thread_cpu_ns();
      continue;
    }
    if (idle_since) idle += (uint64_t)thread_cpu_ns() - idle_since, idle_since = 0;
    U32(m, REG_RDT) = last;
    for (uint32_t i = 0; i < n; i++) bufs[i]->data[1]++;
    for (;;) { /* TX clean: whole groups of TX_CLEAN_BATCH, one status read each */
      uint32_t cleanable = tx >= clean ? tx - clean : tx + RING_SIZE - clean;
      if (cleanable < TX_CLEAN_BATCH) break;
      uint32_t to = clean + TX_CLEAN_BATCH - 1;
      if (to >= RING_SIZE) to -= RING_SIZE;
      if (!(U32(m + TX_RING + to * DESC, 12) & DD)) break;
      for (uint32_t i = clean;; i = i + 1 == RING_SIZE ? 0 : i + 1) {
        pkt_free(&pool, tx_bufs[i]);
        if (i == to) break;
      }
      clean = to + 1 == RING_SIZE ? 0 : to + 1;
    }
    uint32_t sent = 0;
    for (; sent < n; sent++) {
      uint32_t next = tx + 1 == RING_SIZE ? 0 : tx + 1;
      if (next == clean) break;
      struct pkt_buf *b = bufs[sent];
      volatile char *d = m + TX_RING + tx * DESC;
      U64(d, 0) = b->buf_addr_phy + HDR;
      U32(d, 8) = TX_CMD | b->size;
      U32(d, 12) = b->size << PAYLEN_SHIFT;
      tx_bufs[tx] = b;
      tx = next;
    }
    RELEASE();
    U32(m, REG_TDT) = tx;
    for (uint32_t i = sent; i < n; i++) pkt_free(&pool, bufs[i]);
    done += n;
  }
  return (double)((uint64_t)thread_cpu_ns() - t0 - idle);
}
double c_forward(char *mm, uint32_t batch, uint32_t packets) { return forward_run(mm, batch, packets, 0); }

/*
 * The C baseline of bench/scaling.ts: `threads` (1 or 2) threads, unpinned like the runtimes' workers, each
 * forwarding `packets` on its own NIC (m0, m1) with the device's pass inline, released together; returns the
 * packets of all threads over the window from the first start to the last end, in Mpps. The NICs are reset by
 * the caller (nic_sim.ts) before each call.
 */
struct scaling_job { char *mm; uint32_t batch, packets; volatile uint32_t *go; uint64_t start, end; };
static void *scaling_main(void *a) {
  struct scaling_job *j = a;
  while (!*j->go) __asm__ __volatile__("" ::: "memory");
  j->start = now_ns();
  forward_run(j->mm, j->batch, j->packets, 1);
  j->end = now_ns();
  return NULL;
}
double c_scaling_mpps(char *m0, char *m1, uint32_t batch, uint32_t packets, uint32_t threads) {
  static volatile uint32_t go;
  struct scaling_job jobs[2] = { { m0, batch, packets, &go, 0, 0 }, { m1, batch, packets, &go, 0, 0 } };
  pthread_t t[2];
  if (threads < 1 || threads > 2) return -1;
  go = 0;
  for (uint32_t i = 0; i < threads; i++) {
    if (pthread_create(&t[i], NULL, scaling_main, &jobs[i]) != 0) return -1;
  }
  usleep(1000); /* let every thread reach the start line */
  go = 1;
  uint64_t first = UINT64_MAX, last = 0;
  for (uint32_t i = 0; i < threads; i++) {
    pthread_join(t[i], NULL);
    if (jobs[i].start < first) first = jobs[i].start;
    if (jobs[i].end > last) last = jobs[i].end;
  }
  return (double)threads * packets / ((double)(last - first) / 1000);
}

/* The TSC frequency in Hz, measured against CLOCK_MONOTONIC over `ms` milliseconds (0 where there is no TSC). */
double tsc_hz(uint32_t ms) {
#if defined(__x86_64__)
  uint32_t lo, hi;
  __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
  uint64_t c0 = (uint64_t)hi << 32 | lo, t0 = now_ns();
  while (now_ns() - t0 < (uint64_t)ms * 1000000u) {}
  __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
  uint64_t c1 = (uint64_t)hi << 32 | lo, t1 = now_ns();
  return (double)(c1 - c0) * 1e9 / (double)(t1 - t0);
#else
  (void)ms;
  return 0;
#endif
}

/*
 * The round trip of one cache line between two CPUs of the process (the first two of its affinity mask), in ns:
 * two threads pinned one per CPU bounce a counter `chunks` x 1000 times; the figure is the fastest chunk's mean, so
 * a chunk in which either thread was preempted does not count. P2's device thread and driver exchange every
 * descriptor and frame line this way, so their cost follows this latency: on this KVM guest the host places the two
 * vCPUs now on one physical core (about 50 ns) and now on two (about 300 ns), and flips between the two every few
 * seconds to minutes. bench/host.ts probes it around each P2 repetition. Returns 0 with fewer than two CPUs.
 */
struct bounce { volatile uint64_t *line; int cpu; uint32_t n; };
static void pin_cpu(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}
static void *bounce_back(void *a) {
  struct bounce *b = a;
  pin_cpu(b->cpu);
  for (uint64_t i = 0; i < b->n; i++) {
    while (*b->line != 2 * i + 1) __asm__ __volatile__("" ::: "memory");
    *b->line = 2 * i + 2;
  }
  return NULL;
}
struct probe { volatile uint64_t *line; int cpu, other; uint32_t chunks; double best; };
static void *bounce_lead(void *a) {
  struct probe *p = a;
  pin_cpu(p->cpu);
  struct bounce b = { p->line, p->other, p->chunks * 1000u };
  pthread_t t;
  if (pthread_create(&t, NULL, bounce_back, &b) != 0) return NULL;
  uint64_t i = 0;
  for (uint32_t c = 0; c < p->chunks; c++) {
    uint64_t t0 = now_ns();
    for (uint32_t k = 0; k < 1000; k++, i++) {
      *p->line = 2 * i + 1;
      while (*p->line != 2 * i + 2) __asm__ __volatile__("" ::: "memory");
    }
    double ns = (double)(now_ns() - t0) / 1000;
    if (p->best == 0 || ns < p->best) p->best = ns;
  }
  pthread_join(t, NULL);
  return NULL;
}
double core_rt_ns(uint32_t chunks) {
  cpu_set_t s;
  if (sched_getaffinity(0, sizeof s, &s) != 0 || CPU_COUNT(&s) < 2) return 0;
  int cpus[2], n = 0;
  for (int c = 0; c < CPU_SETSIZE && n < 2; c++) if (CPU_ISSET(c, &s)) cpus[n++] = c;
  static uint64_t line[8] __attribute__((aligned(64)));
  line[0] = 0;
  struct probe p = { line, cpus[0], cpus[1], chunks, 0 };
  pthread_t t; /* the caller (a runtime's JS thread) is not pinned: a thread of its own leads */
  if (pthread_create(&t, NULL, bounce_lead, &p) != 0) return 0;
  pthread_join(t, NULL);
  return p.best;
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

/*
 * P4's C baseline of what a driver really does: translate every page of a buffer once (one pagemap pread per page,
 * at set-up), then look up a bus address per buffer in that table. c_table_build_ns builds the table for the
 * `span` bytes at addr and returns its cost in ns; c_table_lookup_ns does n lookups of addr + (i * 2056 mod span)
 * and returns ns per lookup.
 */
static uint64_t *table;
static long table_page;
double c_table_build_ns(uint64_t addr, uint32_t span) {
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  table_page = sysconf(_SC_PAGESIZE);
  uint32_t pages = (span + table_page - 1) / table_page;
  free(table);
  table = malloc(pages * sizeof *table);
  uint64_t t0 = now_ns(), e;
  for (uint32_t p = 0; p < pages; p++) {
    if (pread(fd, &e, 8, (off_t)((addr / table_page + p) * 8)) != 8) { close(fd); return -1; }
    table[p] = (e & ((1ull << 55) - 1)) * table_page;
  }
  uint64_t t1 = now_ns();
  close(fd);
  return (double)(t1 - t0);
}
double c_table_lookup_ns(uint32_t span, uint32_t n) {
  uint64_t sum = 0, t0 = now_ns();
  for (uint32_t i = 0; i < n; i++) {
    uint32_t off = (uint32_t)((uint64_t)i * 2056 % span);
    sum ^= table[off / table_page] + off % table_page;
    __asm__ __volatile__("" ::"r"(sum));
  }
  uint64_t t1 = now_ns();
  return (double)(t1 - t0) / n;
}

/* ---- P3 on the host CPU ---- */

/*
 * The wake-up path of P3's designs at the host's own speed: an eventfd written by a thread after a delay stands in
 * for the interrupt (its kernel side, the eventfd signal and the wake-up, is the same as an MSI's). The C waiters
 * here and the runtimes' IrqEventFd sleep on it in turn (bench/wake_native.ts).
 */
struct raise { int fd; uint32_t us; };
static uint64_t raise_stamp; /* __atomic: the waiter reads it after the write woke it; 0: the write failed */
static void *raise_main(void *a) {
  struct raise r = *(struct raise *)a;
  free(a);
  usleep(r.us);
  uint64_t one = 1;
  __atomic_store_n(&raise_stamp, now_ns(), __ATOMIC_RELEASE);
  if (write(r.fd, &one, 8) != 8) __atomic_store_n(&raise_stamp, 0, __ATOMIC_RELEASE);
  return NULL;
}
/* A detached thread adds 1 to the eventfd `fd` after `us` microseconds, stamping the clock just before. */
int start_eventfd_raise(int fd, uint32_t us) {
  struct raise *r = malloc(sizeof *r);
  if (!r) return -1;
  r->fd = fd, r->us = us;
  pthread_t t;
  int e = pthread_create(&t, NULL, raise_main, r);
  if (e == 0) pthread_detach(t);
  else free(r);
  return e;
}
/* When the last raise wrote its eventfd (CLOCK_MONOTONIC ns; 0 if the write failed). */
double eventfd_raise_stamp_ns(void) { return (double)__atomic_load_n(&raise_stamp, __ATOMIC_ACQUIRE); }

/* The C waiter of the block design (what waitSync() does): raise in `us`, look (poll, timeout 0), sleep in a blocking
 * read(2); the wake-up in ns (raise -> the read returned), -1 on an error. */
double c_wake_block_ns(uint32_t us) {
  static int fd = -1;
  if (fd < 0 && (fd = eventfd(0, EFD_CLOEXEC)) < 0) return -1;
  struct pollfd p = {.fd = fd, .events = POLLIN};
  uint64_t v;
  if (start_eventfd_raise(fd, us) != 0) return -1;
  if (poll(&p, 1, 0) != 0) return -1; /* the raise must find the waiter asleep */
  while (read(fd, &v, 8) != 8) { /* EINTR */ }
  return (double)now_ns() - eventfd_raise_stamp_ns();
}

/* The C hand-off design (what an async wait() stands for): a waiter thread sleeps in poll(2) on the vector's eventfd,
 * reads it and writes a notify eventfd, on which the main loop sleeps in epoll_wait(2). */
static int ho_fd = -1, ho_notify = -1, ho_epfd = -1;
static volatile int ho_stop;
static pthread_t ho_thread;
static void *ho_main(void *a) {
  (void)a;
  struct pollfd p = {.fd = ho_fd, .events = POLLIN};
  uint64_t v;
  while (!ho_stop) {
    if (poll(&p, 1, 100) != 1 || read(ho_fd, &v, 8) != 8) continue;
    if (write(ho_notify, &v, 8) != 8) break;
  }
  return NULL;
}
/* Starts the hand-off's waiter thread and main-loop epoll set; 0 or -1. */
int c_handoff_start(void) {
  struct epoll_event ev = {.events = EPOLLIN};
  if ((ho_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 || (ho_notify = eventfd(0, EFD_CLOEXEC)) < 0 ||
      (ho_epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 || epoll_ctl(ho_epfd, EPOLL_CTL_ADD, ho_notify, &ev) != 0)
    return -1;
  ho_stop = 0;
  return pthread_create(&ho_thread, NULL, ho_main, NULL) == 0 ? 0 : -1;
}
/* One hand-off wake-up: raise in `us`, the main loop sleeps in epoll_wait, reads the notify eventfd; ns, or -1. */
double c_wake_handoff_ns(uint32_t us) {
  struct epoll_event ev;
  uint64_t v;
  if (start_eventfd_raise(ho_fd, us) != 0) return -1;
  while (epoll_wait(ho_epfd, &ev, 1, -1) != 1) { /* EINTR */ }
  if (read(ho_notify, &v, 8) != 8) return -1;
  return (double)now_ns() - eventfd_raise_stamp_ns();
}
/* Stops and joins the hand-off's thread, closes its descriptors. */
void c_handoff_stop(void) {
  ho_stop = 1;
  pthread_join(ho_thread, NULL);
  close(ho_fd), close(ho_notify), close(ho_epfd);
  ho_fd = ho_notify = ho_epfd = -1;
}
