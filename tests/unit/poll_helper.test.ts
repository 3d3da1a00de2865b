/**
 * The busy-poll C helper: the objects embedded in `ffi/poll_helper_blob.ts` are what the build script makes from
 * `ffi/poll_helper.c`, and `Poller` (C helper and pure-TypeScript fallback alike) matches, times out, walks rings,
 * sees a write made by another process, and refuses closed or out-of-range targets. Functional only: speed is
 * measured by `bench/`.
 *
 * How the embedded objects are verified, offline: for each architecture whose compiler is installed (gcc for x86_64
 * and `aarch64-linux-gnu-gcc` are, via tools/setup.sh), rebuild with the same flags
 * and require the same bytes as the embedded object when the compiler version equals the one recorded in its
 * `.comment`; a different compiler version legitimately emits other code, so then only the exported ABI is
 * compared. Without the compiler, `readelf` (binutils, always there with gcc) checks the object's class, machine,
 * exported symbols and that it needs no library.
 *
 * Run: `node_modules/deno/deno test -A tests/unit/poll_helper.test.ts` or `bun test tests/unit/poll_helper.test.ts`.
 * @module
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { MFD_CLOEXEC } from "../../ffi/constants.ts";
import { libc } from "../../ffi/libc.ts";
import { embeddedHelper, POLL_HELPER_REFUSED, pollHelper, requirePollHelper } from "../../ffi/poll_helper.ts";
import { ClosedError, OutOfRangeError } from "../../lib/errors.ts";
import { Poller, type RingLayout, spinUntil } from "../../lib/poll.ts";
import type { Region } from "../../lib/region.ts";
import type { DeviceFd } from "../../lib/types.ts";
import { skipBecause } from "../skip.ts";
import { openMemfdRegion } from "./memfd_region.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const EXPORTS = [
  "vfio_ts_io_wmb",
  "vfio_ts_poll_abi",
  "vfio_ts_ring_ready",
  "vfio_ts_rx_refill",
  "vfio_ts_spin32",
  "vfio_ts_spin64",
  "vfio_ts_tx_post",
];
const ARCHES = [
  { arch: "x86_64", cc: "x86_64-linux-gnu-gcc", machine: "Advanced Micro Devices X86-64" },
  { arch: "aarch64", cc: "aarch64-linux-gnu-gcc", machine: "AArch64" },
];

const run = (cmd: string, args: string[]): string => execFileSync(cmd, args, { cwd: ROOT, encoding: "utf8" });
const has = (cmd: string): boolean => {
  try {
    run("sh", ["-c", `command -v ${cmd}`]);
    return true;
  } catch {
    return false;
  }
};
const exported = (so: string): string[] =>
  run("readelf", ["--dyn-syms", "-W", so]).split("\n").map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 8 && f[3] === "FUNC" && f[4] === "GLOBAL" && f[6] !== "UND").map((f) => f[7]).sort();
const comment = (so: string): string => run("readelf", ["-p", ".comment", so]).match(/GCC: .*/)?.[0] ?? "";

describe("embedded poll helper objects", () => {
  const scratch = mkdtempSync(join(tmpdir(), "vfio-ts-helper-"));
  after(() => rmSync(scratch, { recursive: true, force: true }));
  for (const { arch, cc, machine } of ARCHES) {
    const so = join(scratch, `embedded-${arch}.so`);
    writeFileSync(so, embeddedHelper(arch) ?? new Uint8Array(0));
    it(`${arch}: an ELF64 ${machine} object exporting the helper ABI and needing no library`, () => {
      const header = run("readelf", ["-h", so]);
      assert.match(header, /Class:\s+ELF64/);
      assert.match(header, new RegExp(`Machine:\\s+${machine}`));
      assert.deepEqual(exported(so), EXPORTS);
      assert.doesNotMatch(run("readelf", ["-d", so]), /NEEDED/);
    });
    it(`${arch}: rebuilding with the build script's flags gives the embedded object`, {
      skip: skipBecause(
        !has(cc) && `${cc} not installed (tools/setup.sh installs it); checked with readelf above`,
        `${arch}: rebuilding with the build script's flags`,
      ),
    }, () => {
      const dir = mkdtempSync(join(tmpdir(), "vfio-ts-helper-"));
      try {
        run("bash", ["tools/build-helper.sh", "--out", dir, arch]);
        const fresh = join(dir, `linux-${arch}`, "libvfio_ts_poll.so");
        if (comment(fresh) === comment(so)) {
          assert.ok(
            readFileSync(fresh).equals(readFileSync(so)),
            `the embedded ${arch} object differs from a rebuild: run deno task build:helper`,
          );
        } else {
          console.log(`${arch}: local ${comment(fresh)} vs embedded ${comment(so)}: comparing the ABI only`);
          assert.deepEqual(exported(fresh), exported(so));
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

const SIZE = 0x4000;

/** A memfd standing in for a device fd (as in region.test.ts): mmap, pread and pwrite behave as on VFIO. */
class MemfdDevice implements DeviceFd {
  #fd = libc.memfdCreate("vfio-ts-poll-test", MFD_CLOEXEC);
  readonly name = "memfd";
  constructor() {
    libc.ftruncate(this.#fd, SIZE);
  }
  get fd(): number {
    return this.#fd;
  }
  close(): void {
    libc.close(this.#fd);
  }
}

function openRegion(dev: MemfdDevice): Region {
  return openMemfdRegion(dev, SIZE);
}

it("the embedded helper loads on this machine, through a memfd it closes again", () => {
  const fds = (): number => readdirSync("/proc/self/fd").length;
  const before = fds();
  const helper = pollHelper();
  assert.equal(helper.native, true, `${helper.reason}`);
  assert.ok(fds() <= before, "no memfd left open");
  assert.equal(pollHelper(), helper, "loaded once");
});

for (const native of [true, false]) {
  describe(native ? "Poller with the C helper" : "Poller in pure TypeScript", () => {
    it("returns at once on a match and the last value on a timeout", () => {
      const dev = new MemfdDevice();
      using bar = openRegion(dev);
      const p = new Poller(bar, { native });
      assert.equal(p.native, native);
      bar.write32(0x100, 0x8001);
      assert.equal(p.spin32(0x100, 0x1, 0x1, 1), 0x8001);
      assert.equal(p.spin32(0x100, 0x8000, 0x0, 1000), 0x8001, "timeout: the last value read");
      bar.write32(0x100, 0xfffffffe);
      assert.equal(p.spin32(0x100, 0xffffffff, 0xfffffffe, 5), 0xfffffffe);
      bar.write64(0x200, 0x8000_0000_0000_0003n);
      assert.equal(p.spin64(0x200, 1n << 63n, 1n << 63n, 10), 0x8000_0000_0000_0003n);
      assert.equal(p.spin64(0x200, 4n, 4n, 10), 0x8000_0000_0000_0003n);
      dev.close();
    });

    it("counts consecutive done descriptors from head, wrapping, within the budget", () => {
      const dev = new MemfdDevice();
      using bar = openRegion(dev);
      const p = new Poller(bar, { native });
      const ring: RingLayout = { offset: 0x1000, stride: 16, size: 8, statusOffset: 12, mask: 1, want: 1 };
      const done = (i: number, on: boolean): void => bar.write32(0x1000 + i * 16 + 12, on ? 0x101 : 0x100);
      for (let i = 0; i < 8; i++) done(i, false);
      assert.equal(p.ringReady(ring, 0, 32, 100), 0, "nothing done");
      for (const i of [6, 7, 0, 1, 3]) done(i, true);
      assert.equal(p.ringReady(ring, 6, 32), 4, "6, 7, 0, 1 then 2 is not done");
      assert.equal(p.ringReady(ring, 6, 3), 3, "budget");
      assert.equal(p.ringReady(ring, 3, 32), 1);
      for (let i = 0; i < 8; i++) done(i, true);
      assert.equal(p.ringReady(ring, 5, 100), 8, "never more than the ring");
      assert.throws(() => p.ringReady(ring, 8, 1), OutOfRangeError);
      assert.throws(() => p.ringReady({ ...ring, size: 1024 }, 0, 1), OutOfRangeError);
      dev.close();
    });

    it("sees a write made by another process while it spins (the load is never hoisted)", async () => {
      const dev = new MemfdDevice();
      using bar = openRegion(dev);
      const p = new Poller(bar, { native });
      // Warm the loop up on a set bit first, so a JIT has compiled it before the real wait.
      bar.write32(0x300, 1);
      for (let i = 0; i < 20_000; i++) p.spin32(0x300, 1, 1, 10);
      bar.write32(0x300, 0);
      const child = spawn("sh", [
        "-c",
        `sleep 0.05; printf '\\001' | dd of=/proc/${process.pid}/fd/${dev.fd} bs=1 seek=${0x300} conv=notrunc 2>/dev/null`,
      ]);
      const exited = new Promise((r) => child.on("exit", r));
      const t0 = performance.now();
      const v = p.spin32(0x300, 1, 1, 0xffffffff);
      const ms = performance.now() - t0;
      assert.equal(v & 1, 1, `not seen after ${ms.toFixed(0)} ms`);
      await exited;
      dev.close();
    });

    it("refuses out-of-range, misaligned and closed targets with typed errors", () => {
      const dev = new MemfdDevice();
      const bar = openRegion(dev);
      const p = new Poller(bar, { native });
      assert.throws(() => p.spin32(SIZE, 1, 1, 1), OutOfRangeError);
      assert.throws(() => p.spin32(2, 1, 1, 1), OutOfRangeError);
      assert.throws(() => p.spin64(SIZE - 4, 1n, 1n, 1), OutOfRangeError);
      assert.throws(() => p.spin32(0, 1, 1, 0), OutOfRangeError);
      bar.close();
      assert.throws(() => p.spin32(0, 1, 1, 1), ClosedError);
      assert.throws(() => new Poller(bar, { native }), ClosedError);
      dev.close();
    });
  });
}

/** Ring layouts that must be refused before any read: each field bad in each way, and rings past the buffer. */
const GOOD: RingLayout = { offset: 0x1000, stride: 16, size: 8, statusOffset: 12, mask: 1, want: 1 };
const HOSTILE_LAYOUTS: [string, Partial<RingLayout>][] = [
  ...[-4, 0, 2, 6, 1.5, NaN, Infinity, 2 ** 32, -(2 ** 32) + 16].map((v): [string, Partial<RingLayout>] => [
    `stride ${v}`,
    { stride: v },
  ]),
  ...[0, -1, 1.5, NaN, 2 ** 32 + 8].map((v): [string, Partial<RingLayout>] => [`size ${v}`, { size: v }]),
  ...[-4, 2, 1.5, NaN, SIZE, 2 ** 32].map((v): [string, Partial<RingLayout>] => [`offset ${v}`, { offset: v }]),
  ...[-4, 2, 16, 14, NaN].map((v): [string, Partial<RingLayout>] => [`statusOffset ${v}`, { statusOffset: v }]),
  ...[NaN, 1.5, 2 ** 32, -(2 ** 31) - 1].map((v): [string, Partial<RingLayout>] => [`mask ${v}`, { mask: v }]),
  ["want outside mask", { want: 3 }],
  ["a ring larger than the buffer", { size: 1024 }],
  ["a ring ending 4 bytes past the buffer", { offset: SIZE - 8 * 16 + 4, statusOffset: 12 }],
  ["a huge stride", { stride: 0x40000000 }],
];

for (const native of [true, false]) {
  describe(`hostile ring layouts and arguments, ${native ? "C helper" : "pure TypeScript"}: typed errors, no read`, () => {
    it("every bad layout field is an OutOfRangeError when the ring is prepared, and from ringReady", () => {
      const dev = new MemfdDevice();
      using bar = openRegion(dev);
      const p = new Poller(bar, { native });
      for (const [what, change] of HOSTILE_LAYOUTS) {
        const layout = { ...GOOD, ...change };
        assert.throws(() => p.ring(layout), OutOfRangeError, what);
        assert.throws(() => p.ringReady(layout, 0, 1), OutOfRangeError, what);
      }
      // The last descriptor's status word ending exactly at the end is fine.
      assert.equal(p.ring({ ...GOOD, offset: SIZE - 8 * 16 }).ready(0, 8), 0);
      dev.close();
    });

    it("bad heads, budgets and spin counts are refused per call; a changed layout is validated again", () => {
      const dev = new MemfdDevice();
      using bar = openRegion(dev);
      const p = new Poller(bar, { native });
      const ring = p.ring(GOOD);
      assert.ok(Object.isFrozen(ring.layout));
      for (const head of [-1, 1.5, NaN, 8, 2 ** 32]) assert.throws(() => ring.ready(head, 1), OutOfRangeError);
      for (const budget of [-1, 1.5, NaN, 2 ** 32]) assert.throws(() => ring.ready(0, budget), OutOfRangeError);
      for (const spins of [0, -1, 1.5, NaN, 2 ** 32]) assert.throws(() => ring.ready(0, 1, spins), OutOfRangeError);
      assert.equal(ring.ready(0, 0), 0, "budget 0 polls nothing");
      const layout = { ...GOOD };
      assert.equal(p.ringReady(layout, 0, 4), 0);
      layout.stride = -4; // the same object, changed after it was prepared
      assert.throws(() => p.ringReady(layout, 0, 4), OutOfRangeError);
      bar.close();
      assert.throws(() => ring.ready(0, 1), ClosedError);
      dev.close();
    });

    it("spin32/spin64 refuse non-integer, out-of-range or mismatched masks", () => {
      const dev = new MemfdDevice();
      using bar = openRegion(dev);
      const p = new Poller(bar, { native });
      for (const [mask, want] of [[NaN, 0], [1.5, 1], [2 ** 32, 0], [1, 2]]) {
        assert.throws(() => p.spin32(0, mask, want, 1), OutOfRangeError, `${mask}/${want}`);
      }
      for (const offset of [-4, NaN, 1.5, 2 ** 32]) assert.throws(() => p.spin32(offset, 1, 1, 1), OutOfRangeError);
      bar.write32(0, 0x8000_0000);
      assert.equal(p.spin32(0, 1 << 31, 1 << 31, 1), 0x8000_0000, "signed 32-bit masks (1 << 31) are accepted");
      for (const [mask, want] of [[-1n, 0n], [2n ** 64n, 0n], [1n, 2n]]) {
        assert.throws(() => p.spin64(0, mask, want, 1), OutOfRangeError, `${mask}/${want}`);
      }
      dev.close();
    });
  });
}

it("the C helper itself refuses what would read outside the mapping (a direct, unvalidated call)", () => {
  const c = requirePollHelper();
  const dev = new MemfdDevice();
  using bar = openRegion(dev);
  const base = c.base(bar.unsafeAddress);
  bar.write32(0x1000 + 12, 1);
  const u32 = (n: number): number => n >>> 0; // what the FFI passes for a negative number
  assert.equal(c.ringReady(base, SIZE, 16, 0x1000 + 12, 8, 0, 1, 1, 8, 1), 1, "a valid ring");
  for (
    const [stride, status, size, head] of [
      [u32(-4), 0x1000 + 12, 8, 1], // the stride of the crash: ~4 GiB past the buffer
      [0, 0x1000 + 12, 8, 0],
      [6, 0x1000 + 12, 8, 0],
      [16, 0x1000 + 14, 8, 0],
      [16, SIZE, 1, 0],
      [16, 0x1000 + 12, 1024, 0],
      [0xfffffffc, 0, 0xffffffff, 0], // 64-bit products that would wrap in 32 bits
      [16, 0x1000 + 12, 0, 0],
      [16, 0x1000 + 12, 8, 8],
    ]
  ) {
    assert.equal(c.ringReady(base, SIZE, stride, status, size, head, 1, 1, 8, 1), POLL_HELPER_REFUSED, `${stride}`);
  }
  bar.write32(SIZE - 4, 7);
  assert.equal(c.spin32(base, SIZE, SIZE - 4, 0, 0, 1), 7);
  assert.equal(c.spin32(base, SIZE, SIZE, 0, 0, 1), 0, "past the end: nothing read");
  assert.equal(c.spin32(base, SIZE, u32(-4), 0, 0, 1), 0);
  assert.equal(c.spin32(base, SIZE, 2, 0, 0, 1), 0, "misaligned");
  assert.equal(c.spin64(base, SIZE, SIZE - 4, 0n, 0n, 1), 0n);
  dev.close();
});

it("spinUntil keeps one poller per target", () => {
  const dev = new MemfdDevice();
  using bar = openRegion(dev);
  bar.write32(0x40, 7);
  assert.equal(spinUntil(bar, 0x40, 7, 7, 1), 7);
  assert.equal(spinUntil(bar, 0x40, 8, 8, 3), 7);
  dev.close();
});
