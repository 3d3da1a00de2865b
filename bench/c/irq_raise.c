/*
 * P3's interrupt raiser, shared by the C baselines (bench/c/irq_guest.c links it) and the TypeScript side
 * (bench/irq_guest.ts loads it as a shared object): the same code raises every interrupt P3 measures.
 *
 * The waiter must be asleep before the interrupt is raised, or the figure measures a read of an already pending
 * interrupt, not a wake-up. A raiser thread therefore sleeps `min_delay_us`, then looks until it is the only
 * runnable task of the guest (/proc/loadavg) and the waiting thread it was given sits in a wait syscall (read, poll,
 * ppoll, epoll_wait, epoll_pwait, epoll_pwait2: /proc/self/task/<tid>/syscall), twice in a row; only then does it
 * stamp CLOCK_MONOTONIC and write edu's raise-interrupt register. With every other task asleep, nothing but the
 * wake-up itself runs between the stamp and the waiter resuming (the guest has one vCPU). When that state is not seen
 * within `max_wait_us` it raises anyway and says so (`irq_raise_confirmed` returns 0): the caller drops that sample
 * and counts it.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* CLOCK_MONOTONIC in ns, the clock the raiser stamps with. */
double irq_mono_ns(void) { return (double)now_ns(); }
/* The calling thread's id (the waiter tells the raiser who it is). */
int irq_gettid(void) { return (int)syscall(SYS_gettid); }

struct raise {
  volatile uint32_t *reg;
  uint32_t value, min_delay_us, max_wait_us;
  int waiter;
};
static volatile double raise_stamp;
static volatile int raise_confirmed, raise_done;
static volatile uint32_t raise_checks;
static volatile int raise_blocker, last_blocker;

/* When the last raise wrote the register (CLOCK_MONOTONIC ns, stamped just before the store). */
double irq_raise_stamp_ns(void) { return raise_stamp; }
/* 1 when the last raise saw every other task asleep and the waiter in a wait syscall, 0 when it gave up waiting. */
int irq_raise_confirmed(void) { return raise_confirmed; }
/* How many looks (at /proc/loadavg and the waiter's syscall) the last raise took. */
uint32_t irq_raise_checks(void) { return raise_checks; }
/*
 * Why the last raise could not confirm (0 when it did): 'R' + (the number of runnable tasks << 8) when another task
 * was runnable, or 'W' + (syscall number << 8) when the waiter was asleep but not in a wait syscall.
 */
int irq_raise_blocker(void) { return raise_blocker; }
/* 1 once the last raise has written the register. */
int irq_raise_done(void) { return raise_done; }

static int read_file(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n < 0) return -1;
  buf[n] = 0;
  return (int)n;
}

static int is_wait_syscall(long nr) {
#if defined(__x86_64__)
  return nr == 0 /* read */ || nr == 7 /* poll */ || nr == 271 /* ppoll */ || nr == 232 /* epoll_wait */ ||
         nr == 281 /* epoll_pwait */ || nr == 441 /* epoll_pwait2 */;
#elif defined(__aarch64__)
  return nr == 63 /* read */ || nr == 73 /* ppoll */ || nr == 22 /* epoll_pwait */ || nr == 441 /* epoll_pwait2 */;
#else
  return 0;
#endif
}

/*
 * How many tasks of the whole guest are runnable at this instant, the caller included: the "running" half of
 * /proc/loadavg's fourth field ("running/total"). One file read whatever the number of threads, so the raiser's own
 * work before a raise is the same in a two-thread C program and in a runtime's twenty-thread process (a scan of
 * /proc/self/task made the runtimes' raises follow ten times more file reads).
 */
static int runnable_now(void) {
  char buf[128];
  if (read_file("/proc/loadavg", buf, sizeof buf) < 0) return -1;
  char *slash = strchr(buf, '/');
  if (!slash) return -1;
  char *p = slash;
  while (p > buf && p[-1] != ' ') p--;
  return atoi(p);
}

/* Whether the raiser is the only runnable task of the guest and thread `waiter` sits in a wait syscall. */
static int all_asleep(int waiter) {
  int running = runnable_now();
  if (running != 1) return last_blocker = 'R' + (running << 8), 0;
  char path[64], buf[128];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", waiter);
  long nr = read_file(path, buf, sizeof buf) < 0 ? -1 : strtol(buf, NULL, 10);
  if (!is_wait_syscall(nr)) return last_blocker = 'W' + (int)(nr << 8), 0;
  return 1;
}

/*
 * The raiser is one thread for the whole process, started by the first raise: between raises it sleeps on a
 * condition variable, and right after its store it goes back to sleep there, so nothing of it runs while the
 * waiter wakes (a thread created per raise would be exiting then).
 */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static struct raise request;
static int requested, started;

static void raise_once(struct raise r) {
  usleep(r.min_delay_us);
  uint64_t give_up = now_ns() + (uint64_t)r.max_wait_us * 1000;
  uint32_t checks = 0;
  int confirmed = 0, in_a_row = 0;
  while (!confirmed) {
    checks++;
    in_a_row = all_asleep(r.waiter) ? in_a_row + 1 : 0;
    if (in_a_row >= 2) confirmed = 1;
    else if (now_ns() >= give_up) break;
    else usleep(in_a_row ? 20 : 100);
  }
  raise_checks = checks;
  raise_confirmed = confirmed;
  raise_blocker = confirmed ? 0 : last_blocker;
  raise_stamp = (double)now_ns();
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  *r.reg = r.value;
  __atomic_store_n(&raise_done, 1, __ATOMIC_RELEASE);
}

static void *raise_main(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&lock);
    while (!requested) pthread_cond_wait(&wake, &lock);
    requested = 0;
    struct raise r = request;
    pthread_mutex_unlock(&lock);
    raise_once(r);
  }
  return NULL;
}

/*
 * Asks the raiser thread (started on first use) to raise once: after `min_delay_us`, once every other task of the
 * guest is asleep and thread `waiter` sits in a wait syscall (or after `max_wait_us` more), it stamps the clock and
 * writes `value` to `*reg`. Returns 0, or pthread_create's error.
 */
int irq_raise_start(volatile uint32_t *reg, uint32_t value, int waiter, uint32_t min_delay_us, uint32_t max_wait_us) {
  pthread_mutex_lock(&lock);
  if (!started) {
    pthread_t t;
    int e = pthread_create(&t, NULL, raise_main, NULL);
    if (e) {
      pthread_mutex_unlock(&lock);
      return e;
    }
    pthread_detach(t);
    started = 1;
  }
  request = (struct raise){.reg = reg, .value = value, .min_delay_us = min_delay_us, .max_wait_us = max_wait_us,
                           .waiter = waiter};
  raise_done = 0;
  raise_confirmed = 0;
  requested = 1;
  pthread_cond_signal(&wake);
  pthread_mutex_unlock(&lock);
  return 0;
}

/*
 * For the breakdown of a wake-up: poll(2) one fd for POLLIN, stamping CLOCK_MONOTONIC right after it returns
 * (irq_polled_ns), so the caller can tell the kernel's part (raise -> poll returns) from its own (poll returns ->
 * its code runs). Returns poll's result.
 */
static volatile double polled_stamp;
double irq_polled_ns(void) { return polled_stamp; }
int irq_timed_poll(int fd, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r = poll(&p, 1, timeout_ms);
  polled_stamp = (double)now_ns();
  return r;
}
/* The same for read(2) (a blocking read is the wait of `waitSync()` without a timeout); returns read's result. */
int irq_timed_read(int fd, void *buf, uint32_t len) {
  ssize_t r = read(fd, buf, len);
  polled_stamp = (double)now_ns();
  return (int)r;
}

/*
 * A probe of the design issue #15 suggests for the async wait: a C thread that sleeps in poll(2) on the interrupt
 * eventfd, reads it and calls a thread-safe JS callback (Deno.UnsafeCallback.threadSafe, Bun's threadsafe
 * JSCallback) with the count; the runtime runs the callback on its JS thread. Started and stopped by the bench;
 * the stop eventfd ends the thread. The stamp (irq_polled_ns) is taken as poll returns, as irq_timed_poll does.
 */
struct waiter { int fd, stop; void (*cb)(double); };
static void *waiter_main(void *arg) {
  struct waiter w = *(struct waiter *)arg;
  free(arg);
  struct pollfd p[2] = {{.fd = w.fd, .events = POLLIN}, {.fd = w.stop, .events = POLLIN}};
  for (;;) {
    if (poll(p, 2, -1) < 0) continue;
    polled_stamp = (double)now_ns();
    if (p[1].revents) break;
    uint64_t count;
    if (read(w.fd, &count, 8) == 8) w.cb((double)count);
  }
  return NULL;
}
static pthread_t waiter_thread;
/* Starts the waiter thread on `fd`; writing `stop` (an eventfd) ends it (irq_waiter_join waits for that). */
int irq_waiter_start(int fd, int stop, void (*cb)(double)) {
  struct waiter *w = malloc(sizeof *w);
  if (!w) return -1;
  *w = (struct waiter){.fd = fd, .stop = stop, .cb = cb};
  int e = pthread_create(&waiter_thread, NULL, waiter_main, w);
  if (e) free(w);
  return e;
}
void irq_waiter_join(void) { pthread_join(waiter_thread, NULL); }
