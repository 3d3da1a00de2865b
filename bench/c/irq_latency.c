// C baseline for bench/irq_latency.ts: one thread writes an eventfd, another wakes from epoll_wait (or
// busy-reads the non-blocking eventfd); prints the median and p90 wake-up latency in microseconds.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

enum { N = 2000 };
static int efd;
static int spin_mode;
static volatile double sent_at;
static volatile int got; // rounds the waiter has finished: the writer never writes twice into one wake-up
static double lat[N];

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void *waiter(void *arg) {
  (void)arg;
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN};
  epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
  for (int i = 0; i < N; i++) {
    uint64_t v;
    if (spin_mode) {
      while (read(efd, &v, 8) != 8) {}
    } else {
      epoll_wait(ep, &ev, 1, -1);
      read(efd, &v, 8);
    }
    lat[i] = now_us() - sent_at;
    __atomic_store_n(&got, i + 1, __ATOMIC_RELEASE);
  }
  return NULL;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void run(int spin, const char *name) {
  spin_mode = spin;
  got = 0;
  efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  pthread_t t;
  pthread_create(&t, NULL, waiter, NULL);
  for (int i = 0; i < N; i++) {
    usleep(300);
    uint64_t one = 1;
    sent_at = now_us();
    write(efd, &one, 8);
    while (__atomic_load_n(&got, __ATOMIC_ACQUIRE) <= i) usleep(50);
  }
  pthread_join(t, NULL);
  close(efd);
  qsort(lat, N, sizeof lat[0], cmp);
  printf("%s %.2f %.2f\n", name, lat[N / 2], lat[N * 9 / 10]);
}

int main(void) {
  run(0, "epoll_wait");
  run(1, "spin");
  return 0;
}
