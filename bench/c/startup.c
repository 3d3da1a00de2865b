/* P5's C baseline: a process that dlopens libc and the poll helper and resolves a symbol (run by bench/all.ts). */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
  void *c = dlopen("libc.so.6", RTLD_NOW), *h = argc > 1 ? dlopen(argv[1], RTLD_NOW) : NULL;
  if (!c || !h || !dlsym(h, "vfio_ts_spin32")) return fprintf(stderr, "%s\n", dlerror()), 1;
  return 0;
}
