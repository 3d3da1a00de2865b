// sysfs against the guest's real kernel: discovery of the edu device, IOMMU groups, the no-IOMMU switch, an
// unbind/bind round trip through vfio-pci, and hugepage reservation.
// Runs under `deno test` and `bun test`; skipped outside the VM (VFIO_TS_IN_VM unset).
import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import { test } from "node:test";
import { InvalidAddressError, NoiommuError } from "../../lib/errors.ts";
import { bindToVfio, recordedDriver, restoreDriver, unbind, vfioHolders } from "../../lib/sysfs/bind.ts";
import { hugepageStatus, reserveHugepages } from "../../lib/sysfs/hugepages.ts";
import { groupViabilityBlockers, iommuGroup, iommuGroupMembers, listIommuGroups } from "../../lib/sysfs/iommu_group.ts";
import { disableNoiommu, enableNoiommu, noiommuStatus } from "../../lib/sysfs/noiommu.ts";
import { findPciDevices, listPciDevices, pciDevice } from "../../lib/sysfs/pci.ts";
import { checkNoiommuPrivileges, hasCapability } from "../../lib/sysfs/privileges.ts";
import { guest, skipIf, skipUnless } from "./guest.ts";

const { mode } = guest;
const skip = skipUnless(false, "sysfs");
const edu = guest.edu ?? "";
const skipEdu = skipIf(guest.edu, "edu", "sysfs tests on edu");

test("listPciDevices finds the edu device on vfio-pci with an IOMMU group", { skip: skipEdu }, () => {
  const all = listPciDevices();
  const d = all.find((x) => x.address === edu);
  assert.ok(d, `edu ${edu} not in ${all.map((x) => x.address).join(" ")}`);
  assert.equal(d.vendor, 0x1234);
  assert.equal(d.device, 0x11e8);
  assert.equal(d.driver, "vfio-pci");
  assert.equal(d.driverOverride, "vfio-pci");
  assert.equal(typeof d.iommuGroup, "number");
  assert.deepEqual(d.bars.map((b) => [b.index, b.kind, b.size]), [[0, "memory", 0x100000n]]);
  assert.equal(d.vfioDevice !== null, true);
  // the cdev exists only with an IOMMU (6.12 makes none for no-IOMMU devices)
  // the rig's iommu mode hides /dev/vfio/devices (a legacy-only kernel), so only iommufd mode has the cdev node
  assert.equal(d.vfioDevicePath !== null, mode === "iommufd");
  assert.deepEqual(findPciDevices("1234:11e8").map((x) => x.address).includes(edu), true);
  assert.deepEqual(pciDevice(edu), d);
});

test("an address with no device is an InvalidAddressError", { skip }, () => {
  assert.throws(() => pciDevice("0000:00:1f.7"), (e: unknown) => {
    assert.ok(e instanceof InvalidAddressError);
    assert.match(e.message, /no PCI device 0000:00:1f\.7 on this machine/);
    return true;
  });
});

test("noiommuStatus matches the guest's mode", { skip }, () => {
  const s = noiommuStatus();
  assert.equal(s.vfioLoaded, true);
  assert.equal(s.supported, true); // the rig's vfio is built with CONFIG_VFIO_NOIOMMU in every mode
  assert.equal(s.enabled, mode === "noiommu");
  if (mode === "noiommu") assert.ok(s.groups.length > 0);
  else assert.deepEqual(s.groups, []);
});

test("the edu group: members, no-IOMMU flag, node, viability", { skip: skipEdu }, () => {
  const n = pciDevice(edu).iommuGroup as number;
  assert.ok(listIommuGroups().includes(n));
  assert.deepEqual(iommuGroupMembers(n), [{ address: edu, driver: "vfio-pci" }]);
  const g = iommuGroup(n);
  assert.equal(g.noiommu, mode === "noiommu");
  assert.equal(g.vfioPath, mode === "noiommu" ? `/dev/vfio/noiommu-${n}` : `/dev/vfio/${n}`);
  assert.equal(g.vfioPathExists, true);
  assert.equal(g.type, mode === "noiommu" ? "unknown" : "DMA");
  assert.deepEqual(groupViabilityBlockers(n), []);
});

test(
  "groups of devices on no driver or other drivers",
  { skip: skip || skipUnless(mode === "noiommu" && "no IOMMU groups in noiommu mode", "groups of devices") },
  () => {
    // with the emulated IOMMU every device has a group; the ICH9 functions 00:1f.x share one, none has a driver
    const ich9 = listPciDevices().filter((d) => d.address.startsWith("0000:00:1f."));
    assert.ok(ich9.length > 1);
    const g = ich9[0].iommuGroup as number;
    assert.ok(ich9.every((d) => d.iommuGroup === g));
    assert.deepEqual(groupViabilityBlockers(g), iommuGroupMembers(g).filter((m) => m.driver !== null));
    // a virtio device the guest kernel drives (the 9p shares) blocks its group
    const virtio = listPciDevices().find((d) => d.driver === "virtio-pci" && d.iommuGroup !== null);
    if (virtio) {
      assert.deepEqual(groupViabilityBlockers(virtio.iommuGroup as number), [
        { address: virtio.address, driver: "virtio-pci" },
      ]);
    }
  },
);

test("unbind and bindToVfio round trip on edu, restored to vfio-pci", { skip: skipEdu }, () => {
  assert.deepEqual(vfioHolders(edu), []);
  try {
    const u = unbind(edu);
    assert.equal(u.previousDriver, "vfio-pci");
    const loose = pciDevice(edu);
    assert.equal(loose.driver, null);
    if (mode === "noiommu") assert.equal(loose.iommuGroup, null); // vfio's fake group goes with the driver
    else assert.equal(typeof loose.iommuGroup, "number");
    assert.equal(unbind(edu).previousDriver, null); // nothing to do

    const plan = bindToVfio(edu, { dryRun: true });
    assert.deepEqual(plan.steps.map((s) => s.kind === "write" && s.path), ["/sys/bus/pci/drivers_probe"]);
    assert.equal(pciDevice(edu).driver, null);

    const b = bindToVfio(edu);
    assert.equal(b.alreadyBound, false);
    assert.equal(b.previousDriver, null);
    assert.equal(b.device.driver, "vfio-pci");
    assert.equal(typeof b.device.iommuGroup, "number");
    assert.ok(iommuGroup(b.device.iommuGroup as number).vfioPathExists);
    assert.deepEqual(recordedDriver(edu), { address: edu, driver: null, driverOverride: "vfio-pci" });
    assert.equal(bindToVfio(edu).alreadyBound, true);

    // restore: back to the recorded state (no driver), then bind again
    const r = restoreDriver(edu);
    assert.equal(r.driver, null);
    assert.equal(pciDevice(edu).driver, null);
    assert.equal(recordedDriver(edu), null);
  } finally {
    if (pciDevice(edu).driver !== "vfio-pci") bindToVfio(edu);
    rmSync(`/run/vfio-ts/${edu}.json`, { force: true });
  }
  assert.equal(pciDevice(edu).driver, "vfio-pci");
  assert.equal(pciDevice(edu).driverOverride, "vfio-pci");
});

const e1000e = guest.e1000e ?? "";

const noiommuOff = "no-IOMMU off: binding a device without an IOMMU fails with NoiommuError; on again: it binds";
test(noiommuOff, {
  skip: skip || skipUnless(mode !== "noiommu" ? "needs the no-IOMMU guest" : !e1000e && "no e1000e device", noiommuOff),
}, () => {
  try {
    assert.equal(unbind(e1000e).previousDriver, "vfio-pci");
    assert.equal(disableNoiommu().enabled, false);
    assert.throws(() => bindToVfio(e1000e), (e: unknown) => {
      assert.ok(e instanceof NoiommuError, String(e));
      assert.match(e.message, /did not bind to vfio-pci \(driver now: none\)/);
      assert.match(e.message, /no IOMMU group and VFIO no-IOMMU mode is off/);
      return true;
    });
    assert.equal(pciDevice(e1000e).driver, null);
    assert.equal(recordedDriver(e1000e), null); // rolled back to the recorded state, record dropped
    assert.throws(() => enableNoiommu({} as unknown as Parameters<typeof enableNoiommu>[0]), NoiommuError);
    assert.equal(noiommuStatus().enabled, false);
    assert.equal(enableNoiommu({ iUnderstandTheRisk: true }).enabled, true);
    const b = bindToVfio(e1000e);
    assert.equal(b.device.driver, "vfio-pci");
    assert.equal(iommuGroup(b.device.iommuGroup as number).noiommu, true);
  } finally {
    if (!noiommuStatus().enabled) enableNoiommu({ iUnderstandTheRisk: true });
    if (pciDevice(e1000e).driver !== "vfio-pci") bindToVfio(e1000e);
    rmSync(`/run/vfio-ts/${e1000e}.json`, { force: true });
  }
});

const flip = "enableNoiommu and disableNoiommu flip the kernel parameter";
test(flip, {
  skip: skip || skipUnless(mode === "noiommu" && "covered above without disturbing the bound devices", flip),
}, () => {
  try {
    assert.equal(enableNoiommu({ iUnderstandTheRisk: true }).enabled, true);
    assert.equal(noiommuStatus().summary.startsWith("enabled"), true);
  } finally {
    assert.equal(disableNoiommu().enabled, false);
  }
  assert.equal(noiommuStatus().supported, true);
});

test("root in the guest has every capability no-IOMMU mode needs", { skip }, () => {
  assert.equal(hasCapability("CAP_SYS_RAWIO"), true);
  assert.equal(hasCapability("CAP_SYS_ADMIN"), true);
  checkNoiommuPrivileges({ lockedBytes: 1 << 30 });
});

test("reserveHugepages grows the 2 MiB pool and the kernel hands the pages out", { skip }, () => {
  const before = hugepageStatus().pools.find((p) => p.sizeKiB === 2048);
  assert.ok(before, "no 2048 kB pool");
  const want = before.free - before.reserved + 8;
  const pool = reserveHugepages(want);
  assert.ok(pool.free - pool.reserved >= want);
  assert.equal(pool.total, before.total + 8);
  const s = hugepageStatus();
  assert.equal(s.defaultSizeKiB, 2048);
  assert.equal(s.total, pool.total); // /proc/meminfo agrees with sysfs
  assert.equal(reserveHugepages(want).total, pool.total); // enough free already: no change
  assert.ok(existsSync("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"));
});
