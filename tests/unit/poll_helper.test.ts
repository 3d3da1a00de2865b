/**
 * The busy-poll C helper: the committed prebuilt objects are what the build script makes from `ffi/poll_helper.c`,
 * and `Poller` (C helper and pure-TypeScript fallback alike) matches, times out, walks rings, sees a write made by
 * another process, and refuses closed or out-of-range targets. Functional only: speed is measured by `bench/`.
 *
 * How the objects are verified, offline: for each architecture whose compiler is installed (gcc for x86_64 is,
 * via tools/setup.sh; `aarch64-linux-gnu-gcc` only after `deno task build:helper`), rebuild with the same flags and
 * require the same bytes when the compiler version equals the one recorded in the object's `.comment`; a different
 * compiler version legitimately emits other code, so then only the exported ABI is compared. Without the compiler,
 * `readelf` (binutils, always there with gcc) checks the object's class, machine, exported symbols and that it
 * needs no library.
 *
 * Run: `node_modules/deno/deno test -A tests/unit/poll_helper.test.ts` or `bun test tests/unit/poll_helper.test.ts`.
 * @module
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { MFD_CLOEXEC } from "../../ffi/constants.ts";
import { libc } from "../../ffi/libc.ts";
import { pollHelper, prebuiltHelperPath } from "../../ffi/poll_helper.ts";
import {
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
} from "../../lib/abi/vfio.ts";
import { ClosedError, OutOfRangeError } from "../../lib/errors.ts";
import { Poller, type RingLayout, spinUntil } from "../../lib/poll.ts";
import { Region, regionName } from "../../lib/region.ts";
import type { DeviceFd } from "../../lib/types.ts";
import { skipBecause } from "../skip.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const EXPORTS = ["vfio_ts_io_wmb", "vfio_ts_poll_abi", "vfio_ts_ring_ready", "vfio_ts_spin32", "vfio_ts_spin64"];
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

describe("prebuilt poll helper objects", () => {
  for (const { arch, cc, machine } of ARCHES) {
    const so = prebuiltHelperPath(arch);
    it(`${arch}: an ELF64 ${machine} object exporting the helper ABI and needing no library`, () => {
      const header = run("readelf", ["-h", so]);
      assert.match(header, /Class:\s+ELF64/);
      assert.match(header, new RegExp(`Machine:\\s+${machine}`));
      assert.deepEqual(exported(so), EXPORTS);
      assert.doesNotMatch(run("readelf", ["-d", so]), /NEEDED/);
    });
    it(`${arch}: rebuilding with the build script's flags gives the committed object`, {
      skip: skipBecause(
        !has(cc) && `${cc} not installed (deno task build:helper installs it); checked with readelf above`,
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
            `${so} differs from a rebuild: run deno task build:helper`,
          );
        } else {
          console.log(`${arch}: local ${comment(fresh)} vs committed ${comment(so)}: comparing the ABI only`);
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
  const flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP;
  return Region.open(dev, 0, {
    mmap: "required",
    info: {
      index: 0,
      name: regionName(0),
      size: SIZE,
      offset: 0,
      flags,
      readable: true,
      writable: true,
      mmappable: true,
      sparseAreas: null,
      type: null,
      msixMappable: false,
      capabilityIds: [],
    },
  });
}

it("the helper loads on this machine", () => {
  assert.equal(pollHelper.native, true, `${pollHelper.reason}`);
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

it("spinUntil keeps one poller per target", () => {
  const dev = new MemfdDevice();
  using bar = openRegion(dev);
  bar.write32(0x40, 7);
  assert.equal(spinUntil(bar, 0x40, 7, 7, 1), 7);
  assert.equal(spinUntil(bar, 0x40, 8, 8, 3), 7);
  dev.close();
});
