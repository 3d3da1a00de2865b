/* C baseline for bench/ffi_cost.ts: the same calls, timed the same way (median of runs, ns per call). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

#define RUNS 9
#define MEASURE(name, iters, body)                                   \
  do {                                                               \
    double r[RUNS];                                                  \
    for (int k = 0; k < RUNS; k++) {                                 \
      double t0 = now_ns();                                          \
      for (long i = 0; i < (iters); i++) { body; }                   \
      r[k] = (now_ns() - t0) / (iters);                              \
    }                                                                \
    qsort(r, RUNS, sizeof r[0], cmp);                                \
    printf("%s %.2f\n", name, r[RUNS / 2]);                          \
  } while (0)

int main(void) {
  int fds[2];
  if (pipe(fds)) return 1;
  volatile long sink = 0;
  int n = 0;
  MEASURE("sysconf", 2000000, sink += sysconf(_SC_PAGESIZE));
  MEASURE("ioctl_fionread", 200000, sink += ioctl(fds[0], FIONREAD, &n));
  return sink == 42;
}
