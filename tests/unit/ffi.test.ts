// The libc facade on the host, under whichever runtime runs this file (tools/test-unit.sh runs both): real system
// calls on plain kernel objects (eventfd, memfd, pipe), not VFIO.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  FIONREAD,
  MAP_SHARED,
  MFD_CLOEXEC,
  O_RDONLY,
  POLLIN,
  PROT_READ,
  PROT_WRITE,
  RLIMIT_MEMLOCK,
} from "../../ffi/constants.ts";
import { libc, type PollFd } from "../../ffi/libc.ts";
import { SystemError } from "../../lib/errors.ts";

describe("libc facade", () => {
  it("loads the backend of the running runtime", () => {
    assert.equal(libc.runtime, "Bun" in globalThis ? "bun" : "deno");
    assert.equal(libc.pageSize, 4096);
    assert.equal(libc.getpid() > 0, true);
  });

  it("eventfd: write adds to the counter, read returns and clears it, EAGAIN is -1", () => {
    const fd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    try {
      const one = new BigUint64Array([3n]);
      assert.equal(libc.write(fd, one), 8);
      assert.equal(libc.write(fd, one), 8);
      const out = new BigUint64Array(1);
      assert.equal(libc.read(fd, out), 8);
      assert.equal(out[0], 6n);
      assert.equal(libc.read(fd, out), -1);
      // eventfd_read(3): the same read with an int result, 0 or -1 (EAGAIN)
      const counter = new BigUint64Array(1), bytes = new Uint8Array(counter.buffer);
      assert.equal(libc.write(fd, one), 8);
      assert.equal(libc.eventfdRead(fd, bytes), 0);
      assert.equal(counter[0], 3n);
      assert.equal(libc.eventfdRead(fd, bytes), -1);
    } finally {
      libc.close(fd);
    }
    assert.throws(() => libc.eventfdRead(fd, new Uint8Array(8), "closed eventfd"), (e: unknown) => {
      assert.ok(e instanceof SystemError);
      assert.equal(e.code, "EBADF");
      assert.equal(e.syscall, "eventfd_read");
      return true;
    });
  });

  it("memfd + mmap: a shared mapping sees pwrite, pread sees stores", () => {
    const fd = libc.memfdCreate("vfio-ts-test", MFD_CLOEXEC);
    const size = 2 * libc.pageSize;
    libc.ftruncate(fd, size);
    const addr = libc.mmap(size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    try {
      const u32 = new Uint32Array(libc.arrayBuffer(addr, size));
      libc.pwrite(fd, new Uint32Array([0xdeadbeef]), 4096);
      assert.equal(Atomics.load(u32, 1024), 0xdeadbeef);
      u32[3] = 0x12345678;
      const back = new Uint32Array(1);
      assert.equal(libc.pread(fd, back, 12), 4);
      assert.equal(back[0], 0x12345678);
      assert.equal(libc.addressOf(u32.subarray(2)) - addr, 8n);
    } finally {
      libc.munmap(addr, size);
      libc.close(fd);
    }
  });

  it("ioctl FIONREAD on a pipe, poll readiness", () => {
    const [r, w] = libc.pipe(0);
    try {
      libc.write(w, new Uint8Array([1, 2, 3, 4, 5]));
      const n = new Int32Array(1);
      assert.equal(libc.ioctl(r, FIONREAD, n, "FIONREAD"), 0);
      assert.equal(n[0], 5);
      const fds: PollFd[] = [{ fd: r, events: POLLIN }];
      assert.equal(libc.poll(fds, 0), 1);
      assert.equal((fds[0].revents ?? 0) & POLLIN, POLLIN);
    } finally {
      libc.close(r);
      libc.close(w);
    }
  });

  it("pollIn: 0 on timeout, 1 once the fd is readable", () => {
    const fd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    try {
      assert.equal(libc.pollIn(fd, 0), 0);
      libc.write(fd, new BigUint64Array([1n]));
      assert.equal(libc.pollIn(fd, 1000), 1);
      assert.equal(libc.pollIn(-1, 0), 0); // poll(2) ignores a negative fd
    } finally {
      libc.close(fd);
    }
  });

  it("waitReadable resolves on a write and times out without one", async () => {
    const fd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    try {
      assert.equal(await libc.waitReadable(fd, 30), false);
      setTimeout(() => libc.write(fd, new BigUint64Array([1n])), 10);
      assert.equal(await libc.waitReadable(fd, 5000), true);
    } finally {
      libc.close(fd);
    }
  });

  it("a failing call throws a SystemError with the errno name, the target and a remedy", () => {
    assert.throws(() => libc.open("/nonexistent/vfio-ts", O_RDONLY), (e: unknown) => {
      assert.ok(e instanceof SystemError);
      assert.equal(e.code, "ENOENT");
      assert.equal(e.errno, 2);
      assert.equal(e.syscall, "open");
      assert.equal(e.target, "/nonexistent/vfio-ts");
      return true;
    });
    const fd = libc.eventfd(0, EFD_CLOEXEC);
    try {
      assert.throws(() => libc.ioctl(fd, FIONREAD, new Int32Array(1), "FIONREAD"), (e: unknown) => {
        assert.ok(e instanceof SystemError);
        assert.equal(e.code, "ENOTTY");
        assert.match(e.message, /ioctl FIONREAD/);
        assert.ok(e.remedy);
        return true;
      });
    } finally {
      libc.close(fd);
    }
    assert.throws(() => libc.close(fd), (e: unknown) => e instanceof SystemError && e.code === "EBADF");
  });

  it("getrlimit reports RLIMIT_MEMLOCK", () => {
    const lim = libc.getrlimit(RLIMIT_MEMLOCK);
    assert.equal(lim.soft <= lim.hard, true);
  });
});
