/**
 * Host unit tests of `deviceLoad`, the one load of device-written memory (`lib/device_load.ts`): in a loop hot
 * enough for the optimising JIT it writes nothing (a read-only mapping does not fault: Bun's `Atomics.load` there is
 * a locked read-modify-write and crashes the process) and is not hoisted (another process's write is seen).
 *
 * Run: `node_modules/deno/deno test -A tests/unit/device_load.test.ts` or `node_modules/bun/bin/bun.exe test
 * tests/unit/device_load.test.ts`.
 * @module
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { describe, it } from "node:test";
import { MAP_SHARED, MFD_CLOEXEC, PROT_READ, PROT_WRITE } from "../../ffi/constants.ts";
import { libc } from "../../ffi/libc.ts";
import { deviceLoad } from "../../lib/device_load.ts";

const PAGE = 4096;
const HOT = 2_000_000; // iterations: far past the point where both runtimes' optimising tiers take over

/** A memfd page mapped twice: writable (to fill it) and with `prot` (to read it). */
function page(prot: number): { fd: number; rw: ArrayBuffer; view: ArrayBuffer; [Symbol.dispose](): void } {
  const fd = libc.memfdCreate("vfio-ts-device-load", MFD_CLOEXEC);
  libc.ftruncate(fd, PAGE);
  const rwAt = libc.mmap(PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const viewAt = libc.mmap(PAGE, prot, MAP_SHARED, fd, 0);
  return {
    fd,
    rw: libc.arrayBuffer(rwAt, PAGE),
    view: libc.arrayBuffer(viewAt, PAGE),
    [Symbol.dispose]: () => {
      libc.munmap(rwAt, PAGE);
      libc.munmap(viewAt, PAGE);
      libc.close(fd);
    },
  };
}

describe("deviceLoad", () => {
  it("reads a read-only mapping in a hot loop without writing it (all four widths)", { timeout: 60_000 }, () => {
    using p = page(PROT_READ);
    new Uint32Array(p.rw).forEach((_, i, a) => (a[i] = (i * 0x9e3779b1) >>> 0));
    const u8 = new Uint8Array(p.view), u16 = new Uint16Array(p.view), u32 = new Uint32Array(p.view);
    const u64 = new BigUint64Array(p.view);
    let sum = 0, big = 0n;
    for (let n = 0; n < HOT; n++) {
      sum = (sum + deviceLoad(u8, n & 4095) + deviceLoad(u16, n & 2047) + deviceLoad(u32, n & 1023)) >>> 0;
      if ((n & 7) === 0) big ^= deviceLoad(u64, n & 511);
    }
    let want = 0, wantBig = 0n;
    for (let n = 0; n < HOT; n++) {
      want = (want + u8[n & 4095] + u16[n & 2047] + u32[n & 1023]) >>> 0;
      if ((n & 7) === 0) wantBig ^= u64[n & 511];
    }
    assert.equal(sum, want);
    assert.equal(big, wantBig);
  });

  it("sees a write another process makes while it spins (never hoisted)", { timeout: 60_000 }, async () => {
    using p = page(PROT_READ | PROT_WRITE);
    const u32 = new Uint32Array(p.view);
    const spin = (max: number): number => {
      let n = 0;
      while ((deviceLoad(u32, 0x40) & 1) === 0 && n < max) n++;
      return n;
    };
    u32[0x40] = 1;
    for (let k = 0; k < 200_000; k++) spin(10); // compiled while the bit is set
    u32[0x40] = 0;
    const child = spawn("sh", [
      "-c",
      `sleep 0.05; printf '\\001' | dd of=/proc/${process.pid}/fd/${p.fd} bs=1 seek=${0x100} conv=notrunc 2>/dev/null`,
    ]);
    const exited = new Promise((r) => child.on("exit", r));
    const t0 = performance.now();
    const max = 2 ** 31;
    const n = spin(max);
    const ms = performance.now() - t0;
    assert.ok(n < max, `the write was not seen in ${ms.toFixed(0)} ms`);
    await exited;
  });
});
