// Passed-in descriptors (iommufd mode: device cdevs): a root helper (fixtures/fd_broker.py) opens edu's cdev and
// /dev/iommu and sends both over a UNIX socket (SCM_RIGHTS) to a child that has dropped to the user nobody; that
// child runs fixtures/from_fd.ts, which cannot open the device itself but drives it through Device.fromFd: an edu
// DMA round trip and an MSI. In the test process: a bad fd and a descriptor that is not a device cdev are refused
// with typed errors and leave nothing open.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { describe, it } from "node:test";
import { O_CLOEXEC, O_RDWR } from "../../ffi/constants.ts";
import { libc } from "../../ffi/libc.ts";
import { Device } from "../../lib/device.ts";
import { VfioError } from "../../lib/errors.ts";
import { pciDevice } from "../../lib/sysfs/pci.ts";
import { readableCopy } from "./fixtures/world_readable.ts";
import { guest, skipUnless } from "./guest.ts";

const edu = guest.edu ?? "";
const skip = skipUnless(
  !guest.edu ? "no edu" : guest.mode !== "iommufd" && "device cdevs exist in the rig's iommufd mode only",
);
const FIXTURES = ["tests/integration/fixtures/from_fd.ts", "tests/integration/fixtures/edu_ops.ts"];
const BROKER = join(import.meta.dirname ?? ".", "fixtures/fd_broker.py");
const fdCount = (): number => readdirSync("/proc/self/fd").length;

describe("passed-in descriptors", { timeout: 300_000 }, () => {
  it("an unprivileged process drives edu through fds a root helper sent it", { skip }, () => {
    const cdev = pciDevice(edu).vfioDevicePath!;
    using copy = readableCopy(FIXTURES);
    const script = copy.at(FIXTURES[0]);
    const runtime = guest.runtime === "bun"
      ? [copy.runtime, script]
      : [copy.runtime, "run", "-A", "--no-check", script];
    const r = spawnSync("/usr/bin/python3", [BROKER, cdev, ...runtime, edu], {
      cwd: copy.dir,
      encoding: "utf8",
      timeout: 180_000,
      env: { ...process.env, HOME: copy.home, DENO_DIR: copy.home, BUN_INSTALL_CACHE_DIR: copy.home },
    });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
    assert.equal(out.uid, 65534);
    assert.equal(out.openedItself, false, "nobody cannot open the device nodes");
    assert.equal(out.error, undefined, out.error);
    assert.equal(out.iommu, "iommufd");
    assert.equal(out.dma, true);
    assert.equal(out.msi, 1);
    assert.equal(out.summary.name, edu);
    assert.equal(out.closed, true);
  });

  it("a bad fd or one that is not a device cdev is refused, nothing left open", { skip }, () => {
    const before = fdCount();
    assert.throws(() => Device.fromFd(-1), VfioError);
    const fd = libc.open("/dev/null", O_RDWR | O_CLOEXEC);
    try {
      assert.throws(() => Device.fromFd(fd, { name: "/dev/null" }), (e: Error) => e.name === "SystemError");
      assert.equal(readlinkSync(`/proc/self/fd/${fd}`), "/dev/null", "the caller's fd stays open, and theirs");
    } finally {
      libc.close(fd);
    }
    assert.equal(fdCount(), before, "no iommufd left open");
  });
});
