/*
 * P3's C baselines, run in the guest (by bench/all.ts): QEMU's edu device through VFIO (type1 container), MSI on an
 * eventfd, and the **sleep -> wake** latency: the waiter is asleep first; the raiser of bench/c/irq_raise.c (linked
 * in; the TypeScript side uses the same code) waits until every other thread of the process is asleep and the
 * waiting thread sits in its wait syscall, stamps CLOCK_MONOTONIC and writes edu's raise-interrupt register; the
 * waiter stamps on waking; latency = wake - stamp. A sample whose raise could not see everyone asleep is dropped and
 * counted (`unconfirmed`), as is a wait that found the interrupt already pending (`immediate`).
 * Two designs, the ones the library's waits are held to:
 * - block:   the waiting thread itself looks (poll(2), timeout 0), then sleeps in a blocking read(2) of the eventfd:
 *            what `IrqSet.waitSync()` does;
 * - handoff: a waiter thread sleeps in poll(2) on the interrupt eventfd, reads it and writes a second eventfd on
 *            which the main loop sleeps in epoll_wait(2): a thread hand-off, what an async `wait()` does.
 * Prints `RESULT {json}`: per design p50/p90/p99/mean in µs over the confirmed samples, the samples, and the counts.
 * Ring mode (`ring <in fifo> <out fifo> <blocks>` after the delay): only the block design, in `blocks + 1` blocks of
 * `rounds` kept samples, each block run when a token byte arrives on <in> (a blocking read: the process sleeps) and
 * the token passed on to <out> after it (the file <in>.ready, created once set up, says it waits). bench/all.ts runs this program, Deno's and Bun's `irq_guest.ts` in such a
 * ring on three edu devices, so that every runtime block sits between two C blocks measured milliseconds before and
 * after it (the guest's speed drifts over seconds: see the paired ratio there). Prints `RESULT {"ring": ...}` with
 * each block's p50 and samples.
 * Build: gcc -O2 -pthread -o irq_guest irq_guest.c irq_raise.c.
 * Usage: irq_guest <pci address> [rounds] [delay_us] [ring <in> <out> <blocks>]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define DIE(what) do { perror(what); exit(1); } while (0)

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static volatile uint32_t *regs;
static int delay_us;
/* bench/c/irq_raise.c */
double irq_mono_ns(void);
int irq_gettid(void);
int irq_raise_start(volatile uint32_t *reg, uint32_t value, int waiter, uint32_t min_delay_us, uint32_t max_wait_us);
double irq_raise_stamp_ns(void);
int irq_raise_confirmed(void);
int irq_raise_done(void);
static void start_raise(int waiter) {
  if (irq_raise_start(&regs[0x60 / 4], 1, waiter, delay_us, 200000)) DIE("irq_raise_start");
}

static int efd, notify;
/* Rounds each ring block runs first and drops: the first wake-ups after another process's block. */
#define RING_WARM 3
static volatile int stopping;
static void *waiter_main(void *arg) {
  (void)arg;
  struct pollfd p = {.fd = efd, .events = POLLIN};
  uint64_t count;
  while (!stopping) {
    if (poll(&p, 1, 100) != 1) continue;
    if (read(efd, &count, 8) != 8) continue;
    if (write(notify, &count, 8) != 8) DIE("write notify eventfd");
  }
  return NULL;
}

static void print(const char *name, double *lat, int rounds, int unconfirmed, int immediate, int last) {
  qsort(lat, rounds, sizeof *lat, cmp);
  double sum = 0;
  for (int i = 0; i < rounds; i++) sum += lat[i];
  if (rounds == 0) rounds = 1, lat[0] = 0; /* nothing confirmed: the counts say so */
  printf("\"%s\":{\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,\"mean_us\":%.2f,\"rounds\":%d,"
         "\"unconfirmed\":%d,\"immediate\":%d,\"samples\":[",
         name, lat[rounds / 2], lat[rounds * 9 / 10], lat[rounds * 99 / 100], sum / rounds, rounds, unconfirmed,
         immediate);
  for (int i = 0; i < rounds; i++) printf("%s%.2f", i ? "," : "", lat[i]);
  printf("]}%s", last ? "" : ",");
}

enum { ROUND_KEPT, ROUND_IMMEDIATE, ROUND_UNCONFIRMED };
/*
 * One round of the block design (the eventfd in blocking mode): raise, look (poll(2), timeout 0), sleep in read(2);
 * *lat_us is the wake-up when ROUND_KEPT. Acknowledges edu's interrupt.
 */
static int block_round(double *lat_us) {
  struct pollfd p = {.fd = efd, .events = POLLIN};
  uint64_t count;
  start_raise(irq_gettid());
  int slept = poll(&p, 1, 0) != 1;
  while (read(efd, &count, 8) != 8) { /* EINTR */ }
  double t1 = irq_mono_ns() / 1e3; /* the wake-up is the read's return: no separate kernel part */
  while (!irq_raise_done()) usleep(10);
  int r = !slept ? ROUND_IMMEDIATE : !irq_raise_confirmed() ? ROUND_UNCONFIRMED : ROUND_KEPT;
  if (r == ROUND_KEPT) *lat_us = t1 - irq_raise_stamp_ns() / 1e3;
  regs[0x64 / 4] = regs[0x24 / 4]; /* acknowledge */
  return r;
}

/*
 * `warm` rounds dropped, then block rounds until `rounds` are kept (at most 4 * rounds): the kept latencies in lat;
 * returns how many, and adds the dropped ones to the counts.
 */
static int block_rounds(int warm, int rounds, double *lat, int *unconfirmed, int *immediate) {
  int kept = 0;
  for (int i = -warm; kept < rounds && i < 4 * rounds; i++) {
    double v;
    int r = block_round(&v);
    if (i < 0) continue;
    if (r == ROUND_IMMEDIATE) ++*immediate;
    else if (r == ROUND_UNCONFIRMED) ++*unconfirmed;
    else lat[kept++] = v;
  }
  return kept;
}

/* Ring mode (see the header): blocks + 1 blocks of the block design, each between a token in and a token out. */
static int ring(const char *in_path, const char *out_path, int blocks, int rounds, double *lat) {
  int in = open(in_path, O_RDWR | O_CLOEXEC), out = open(out_path, O_RDWR | O_CLOEXEC);
  if (in < 0 || out < 0) DIE("open ring fifo");
  char ready[512]; /* <in>.ready says this program is set up and about to sleep on the token */
  snprintf(ready, sizeof ready, "%s.ready", in_path);
  int fd = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) DIE("create ring ready file");
  close(fd);
  int unconfirmed = 0, immediate = 0;
  char token;
  printf("\"ring\":{\"blocks\":[");
  for (int b = 0; b <= blocks; b++) {
    if (read(in, &token, 1) != 1) DIE("read ring token");
    int kept = block_rounds(RING_WARM, rounds, lat, &unconfirmed, &immediate);
    if (write(out, &token, 1) != 1) DIE("write ring token");
    qsort(lat, kept, sizeof *lat, cmp);
    printf("%s{\"p50_us\":%.2f,\"samples\":[", b ? "," : "", kept ? lat[kept / 2] : 0);
    for (int i = 0; i < kept; i++) printf("%s%.2f", i ? "," : "", lat[i]);
    printf("]}");
  }
  printf("],\"unconfirmed\":%d,\"immediate\":%d}}\n", unconfirmed, immediate);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return fprintf(stderr, "usage: %s <pci address> [rounds]\n", argv[0]), 2;
  const char *addr = argv[1];
  int rounds = argc > 2 ? atoi(argv[2]) : 300;
  delay_us = argc > 3 ? atoi(argv[3]) : 2000;
  char path[256], link[256];
  snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/iommu_group", addr);
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n < 0) DIE("iommu_group");
  link[n] = 0;
  int container = open("/dev/vfio/vfio", O_RDWR);
  if (container < 0) DIE("/dev/vfio/vfio");
  snprintf(path, sizeof path, "/dev/vfio/%s", strrchr(link, '/') + 1);
  int group = open(path, O_RDWR);
  if (group < 0) DIE(path);
  if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container)) DIE("VFIO_GROUP_SET_CONTAINER");
  if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) DIE("VFIO_SET_IOMMU");
  int dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, addr);
  if (dev < 0) DIE("VFIO_GROUP_GET_DEVICE_FD");

  struct vfio_region_info cfg = {.argsz = sizeof cfg, .index = VFIO_PCI_CONFIG_REGION_INDEX};
  struct vfio_region_info bar = {.argsz = sizeof bar, .index = VFIO_PCI_BAR0_REGION_INDEX};
  if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &cfg) || ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &bar)) DIE("region info");
  uint16_t cmd;
  if (pread(dev, &cmd, 2, cfg.offset + 4) != 2) DIE("read PCI_COMMAND");
  cmd |= 0x6; /* memory space, bus master (an MSI is a memory write by the device) */
  if (pwrite(dev, &cmd, 2, cfg.offset + 4) != 2) DIE("write PCI_COMMAND");
  regs = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev, bar.offset);
  if (regs == MAP_FAILED) DIE("mmap BAR0");

  efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  char buf[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
  struct vfio_irq_set *set = (struct vfio_irq_set *)buf;
  *set = (struct vfio_irq_set){.argsz = sizeof buf, .index = VFIO_PCI_MSI_IRQ_INDEX, .start = 0, .count = 1,
                               .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER};
  memcpy(set->data, &efd, sizeof efd);
  if (ioctl(dev, VFIO_DEVICE_SET_IRQS, set)) DIE("VFIO_DEVICE_SET_IRQS");
  double *lat = calloc(rounds, sizeof *lat);
  int warm = rounds / 10 > 3 ? rounds / 10 : 3;
  uint64_t count;
  printf("RESULT {\"runtime\":\"c\",");

  /* block: this thread looks (poll(2) with timeout 0), then sleeps in a blocking read: what IrqSet.waitSync() does. */
  int me = irq_gettid(), kept = 0, unconfirmed = 0, immediate = 0;
  int flags = fcntl(efd, F_GETFL);
  if (fcntl(efd, F_SETFL, flags & ~O_NONBLOCK)) DIE("fcntl");
  if (argc > 7 && strcmp(argv[4], "ring") == 0) return ring(argv[5], argv[6], atoi(argv[7]), rounds, lat);
  kept = block_rounds(warm, rounds, lat, &unconfirmed, &immediate);
  if (fcntl(efd, F_SETFL, flags)) DIE("fcntl");
  qsort(lat, kept, sizeof *lat, cmp); /* the read's return is the wake-up: the kernel's part is all of it */
  printf("\"block_kernel_p50_us\":%.2f,", kept ? lat[kept / 2] : 0);
  print("block", lat, kept, unconfirmed, immediate, 0);

  /* handoff: a waiter thread sleeps on the interrupt, wakes the main loop through a second eventfd. */
  notify = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, notify, &ev);
  pthread_t waiter;
  if (pthread_create(&waiter, NULL, waiter_main, NULL)) DIE("pthread_create");
  kept = unconfirmed = immediate = 0;
  for (int i = -warm; kept < rounds && i < 4 * rounds; i++) {
    start_raise(me);
    int slept = 0;
    while (read(notify, &count, 8) != 8) {
      slept = 1;
      if (epoll_wait(ep, &ev, 1, 1000) != 1) fprintf(stderr, "no hand-off yet\n");
    }
    double t1 = irq_mono_ns() / 1e3;
    while (!irq_raise_done()) usleep(10);
    if (i >= 0) {
      if (!slept) immediate++;
      else if (!irq_raise_confirmed()) unconfirmed++;
      else lat[kept++] = t1 - irq_raise_stamp_ns() / 1e3;
    }
    regs[0x64 / 4] = regs[0x24 / 4];
  }
  stopping = 1;
  pthread_join(waiter, NULL);
  print("handoff", lat, kept, unconfirmed, immediate, 1);
  printf("}\n");
  return 0;
}
