/*
 * P3's C baseline, run in the guest by bench/all.ts: QEMU's edu device through VFIO (type1 container),
 * MSI on an eventfd, and a loop of "write edu's raise-interrupt register, epoll_wait on the eventfd, read it,
 * acknowledge". Prints `RESULT {json}`: median and p90 raise -> handler latency in µs, and interrupts per second.
 * Usage: irq_guest <pci address> [rounds]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/vfio.h>
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

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 2) return fprintf(stderr, "usage: %s <pci address> [rounds]\n", argv[0]), 2;
  const char *addr = argv[1];
  int rounds = argc > 2 ? atoi(argv[2]) : 2000;
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
  volatile uint32_t *regs = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev, bar.offset);
  if (regs == MAP_FAILED) DIE("mmap BAR0");

  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  char buf[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
  struct vfio_irq_set *set = (struct vfio_irq_set *)buf;
  *set = (struct vfio_irq_set){.argsz = sizeof buf, .index = VFIO_PCI_MSI_IRQ_INDEX, .start = 0, .count = 1,
                               .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER};
  memcpy(set->data, &efd, sizeof efd);
  if (ioctl(dev, VFIO_DEVICE_SET_IRQS, set)) DIE("VFIO_DEVICE_SET_IRQS");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);

  double *lat = calloc(rounds, sizeof *lat);
  int warm = rounds / 10;
  double start = 0;
  for (int i = -warm; i < rounds; i++) {
    if (i == 0) start = now_us();
    double t0 = now_us();
    regs[0x60 / 4] = 1; /* raise */
    uint64_t count;
    while (epoll_wait(ep, &ev, 1, 1000) != 1) fprintf(stderr, "no interrupt yet\n");
    if (read(efd, &count, 8) != 8) DIE("read eventfd");
    if (i >= 0) lat[i] = now_us() - t0;
    regs[0x64 / 4] = regs[0x24 / 4]; /* acknowledge */
  }
  double total = now_us() - start;
  qsort(lat, rounds, sizeof *lat, cmp);
  printf("RESULT {\"median_us\":%.2f,\"p90_us\":%.2f,\"per_s\":%.0f}\n", lat[rounds / 2], lat[rounds * 9 / 10],
         rounds / (total / 1e6));
  return 0;
}
