// The trace in the guest: a child process run with VFIO_TS_TRACE=mmio and VFIO_TS_TRACE_FILE writes one line per
// VFIO/iommufd ioctl (decoded name, the struct the kernel answered with, result, duration), per open/mmap/close
// and per register access through a Device's Region (offset, width, value); VFIO_TS_TRACE=1 leaves register
// accesses out; enableTrace() in the process logs a failing ioctl with its errno, and disableTrace() stops.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { afterEach, describe, it } from "node:test";
import { libc } from "../../ffi/libc.ts";
import { Region } from "../../lib/region.ts";
import { disableTrace, enableTrace, mmioTraced } from "../../lib/trace.ts";
import { guest, openInGuest, releaseDevices, skipIf } from "./guest.ts";

const edu = guest.edu ?? "";
const FIXTURE = join(import.meta.dirname ?? ".", "fixtures/trace_edu.ts");

function traceRun(level: string): { out: string; lines: string[] } {
  const dir = mkdtempSync("/tmp/vfio-ts-trace-");
  try {
    const file = join(dir, "trace.log");
    const args = [FIXTURE, edu, ...guest.noiommuFlag];
    const [exe, ...rest] = guest.runtime === "bun"
      ? [guest.bins.bun, ...args]
      : [guest.bins.deno, "run", "-A", "--no-check", ...args];
    const r = spawnSync(exe, rest, {
      encoding: "utf8",
      timeout: 120_000,
      env: { ...process.env, VFIO_TS_TRACE: level, VFIO_TS_TRACE_FILE: file },
    });
    assert.equal(r.status, 0, `fixture failed: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\[vfio-ts\]/, "the trace goes to the file, not stderr");
    return { out: r.stdout, lines: readFileSync(file, "utf8").split("\n").filter(Boolean) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const has = (lines: string[], re: RegExp): boolean => lines.some((l) => re.test(l));

describe("trace", { timeout: 300_000 }, () => {
  afterEach(() => {
    disableTrace();
    releaseDevices();
  });

  it(
    "VFIO_TS_TRACE=mmio logs ioctls by name, syscalls and register accesses",
    { skip: skipIf(guest.edu, "edu") },
    () => {
      const { out, lines } = traceRun("mmio");
      assert.match(out, /id 10000ed/);
      assert.match(out, /factorial 120/);
      assert.match(out, /msi 1/);
      for (const l of lines) assert.match(l, /^\[vfio-ts\] /, l);
      const ms = / <\d+\.\d{3} ms>$/;
      // the device's info, as the kernel filled it in: PCI, 9 regions, 5 IRQ indexes
      assert.ok(
        has(
          lines,
          /ioctl\(\d+, VFIO_DEVICE_GET_INFO, \{argsz=\d+, flags=0x[0-9a-f]+, num_regions=9, num_irqs=5.*\) = 0 <\d/,
        ),
        lines.join("\n"),
      );
      assert.ok(
        has(lines, /ioctl\(\d+, VFIO_DEVICE_GET_REGION_INFO, \{argsz=\d+, flags=0x[0-9a-f]+, index=0, /),
        "region info",
      );
      assert.ok(
        has(lines, /ioctl\(\d+, VFIO_DEVICE_SET_IRQS, \{argsz=\d+, flags=0x24, index=1, start=0, count=1, \.\.\.\}/),
      );
      assert.ok(has(lines, /^\[vfio-ts\] mmap\(0x100000, .* = 0x[0-9a-f]+ </), "BAR0 mmap");
      assert.ok(has(lines, /^\[vfio-ts\] eventfd\(0, (0x[0-9a-f]+|\d+)\) = \d+ </), "MSI eventfd");
      if (guest.mode === "iommufd") {
        assert.ok(has(lines, /^\[vfio-ts\] open\("\/dev\/iommu", /), "iommufd open");
        assert.ok(has(lines, /ioctl\(\d+, IOMMU_IOAS_ALLOC, \{size=\d+, flags=0x0, out_ioas_id=\d+\}\) = 0/));
        assert.ok(has(lines, /ioctl\(\d+, VFIO_DEVICE_BIND_IOMMUFD, /));
      } else {
        assert.ok(has(lines, /^\[vfio-ts\] open\("\/dev\/vfio\/vfio", /), "container open");
        assert.ok(has(lines, /ioctl\(\d+, VFIO_GROUP_GET_DEVICE_FD, "0000:00:03\.0"\) = \d+ </), "device fd by name");
        assert.ok(has(lines, /ioctl\(\d+, VFIO_SET_IOMMU, \d\) = 0/), "set iommu");
      }
      assert.ok(lines.filter((l) => l.includes("ioctl(")).every((l) => ms.test(l)), "every ioctl has a duration");
      assert.ok(has(lines, new RegExp(`^\\[vfio-ts\\] mmio ${edu} BAR0 read32 0x0 = 0x10000ed$`)), "id read");
      assert.ok(has(lines, new RegExp(`mmio ${edu} BAR0 write32 0x8 <- 0x5$`)), "factorial write");
      assert.ok(has(lines, new RegExp(`mmio ${edu} BAR0 read32 0x8 = 0x78$`)), "factorial read");
      assert.ok(has(lines, new RegExp(`mmio ${edu} BAR0 write32 0x60 <- 0x1234$`)), "MSI raise");
      assert.ok(has(lines, /^\[vfio-ts\] close\(\d+, "device 0000:00:03\.0"\) = 0 </), "device close");
    },
  );

  it("VFIO_TS_TRACE=1 leaves register accesses out", { skip: skipIf(guest.edu, "edu") }, () => {
    const { lines } = traceRun("1");
    assert.ok(has(lines, /VFIO_DEVICE_GET_INFO/));
    assert.ok(!has(lines, /\] mmio /), "no register accesses");
  });

  it("enableTrace() in the process: a failing ioctl with its errno; regions traced only when asked", {
    skip: skipIf(guest.edu, "edu"),
  }, () => {
    const lines: string[] = [];
    enableTrace({ sink: (l) => lines.push(l) });
    const dev = openInGuest(edu);
    assert.throws(() => libc.ioctl(dev.fd, 0x3bff, null, "a request VFIO does not know"), { code: "ENOTTY" });
    assert.ok(
      has(lines, /ioctl\(\d+, 0x3bff, NULL\) \/\* a request VFIO does not know \*\/ = -1 ENOTTY <\d+\.\d{3} ms>$/),
      lines.join("\n"),
    );
    assert.equal(mmioTraced(), false);
    const bar0 = dev.bar(0);
    bar0.read32(0);
    assert.ok(!has(lines, /mmio/));
    dev.close();

    lines.length = 0;
    enableTrace({ mmio: true, sink: (l) => lines.push(l) });
    const dev2 = openInGuest(edu);
    const traced = dev2.bar(0);
    assert.ok(traced instanceof Region);
    assert.equal(traced.read32(0), 0x10000ed);
    assert.equal(traced.window(0x0, 8).read32(0), traced.read32(0x0)); // the ID register: stable, unlike the factorial
    assert.ok(has(lines, /mmio 0000:00:03\.0 BAR0 read32 0x0 = 0x10000ed$/), lines.join("\n"));
    disableTrace();
    const n = lines.length;
    dev2.close();
    assert.equal(lines.length, n, "nothing logged after disableTrace()");
  });
});
