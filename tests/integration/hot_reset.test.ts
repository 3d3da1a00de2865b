// Device.hotReset() in the guest. A device on the root bus has none (UnsupportedError). Behind the rig's PCI bridge
// the secondary bus reset reaches every device there: with the default devices the bridged edu shares the bus with an
// e1000e on its kernel driver (iommu modes: the group is not viable, nothing opens; noiommu: the reset is refused
// with a HotResetBlockedError naming the e1000e). With `--devices edu,edu,edu+` both bridged devices are edus on
// vfio-pci: in one IOMMU group (iommu, iommufd) the reset works with one of them open; in noiommu mode each has its
// own group, so the reset names the other until it is open too. edu answers after the reset.
import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";
import { HotResetBlockedError, UnsupportedError } from "../../lib/errors.ts";
import { pciDevice } from "../../lib/sysfs/pci.ts";
import { guest, openInGuest, releaseDevices, skipIf, skipUnless } from "./guest.ts";

const rootEdu = guest.devices.edu.find((a) => a.startsWith("0000:00:"));
const bridged = guest.devices.edu.filter((a) => a.startsWith("0000:01:"));
const neighbours = (addr: string): string[] =>
  guest.inVm
    ? [...guest.devices.edu, ...guest.kernelDevices].filter((a) => a !== addr && a.startsWith("0000:01:"))
    : [];
const EDU_ID = 0x010000ed;

/** The HotResetBlockedError `f` throws (assert.throws returns nothing). */
function blocked(f: () => void): HotResetBlockedError {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof HotResetBlockedError, String(e));
    return e;
  }
  assert.fail("no HotResetBlockedError");
}

describe("hot reset", { timeout: 120_000 }, () => {
  afterEach(releaseDevices);

  it("a device on the root bus has no hot reset", { skip: skipIf(rootEdu, "edu on the root bus") }, () => {
    const dev = openInGuest(rootEdu!);
    assert.equal(dev.hotResetInfo(), null);
    assert.throws(() => dev.hotReset(), UnsupportedError);
    dev.close();
  });

  it("behind the bridge with a neighbour on its kernel driver: refused, naming it", {
    skip: skipUnless(
      bridged.length !== 1
        ? "needs the default device set (one edu and one kernel e1000e behind the bridge)"
        : guest.mode !== "noiommu" && "the bridged group is not viable in the IOMMU modes (nothing opens)",
    ),
  }, () => {
    const [a] = bridged;
    const nic = neighbours(a).find((n) => pciDevice(n).driver !== "vfio-pci");
    assert.ok(nic, "a kernel-driven neighbour behind the bridge");
    const dev = openInGuest(a);
    const e = blocked(() => dev.hotReset());
    assert.deepEqual(e.devices.map((d) => d.address), [nic]);
    assert.match(e.message, new RegExp(`${nic!.replaceAll(".", "\\.")} \\(on e1000e, not vfio-pci\\)`));
    assert.equal(dev.bar(0).read32(0), EDU_ID, "the device is untouched");
  });

  it("behind the bridge with every device on vfio-pci: resets once all are owned", {
    skip: skipUnless(bridged.length < 2 && "run with --devices edu,edu,edu+ (two edus behind the bridge)"),
  }, () => {
    const [a, b] = bridged;
    const dev = openInGuest(a);
    dev.config.enableMemory();
    const deps = dev.hotResetInfo();
    assert.ok(deps, "the bridge offers a bus reset");
    assert.deepEqual(deps.map((d) => d.address).sort(), [a, b]);
    if (guest.mode === "noiommu") {
      // each no-IOMMU device has a group of its own: the other one's group is not open yet
      const e = blocked(() => dev.hotReset());
      assert.deepEqual(e.devices.map((d) => d.address), [b]);
      assert.match(e.message, /is not open in this process/);
      const other = openInGuest(b);
      dev.hotReset();
      other.config.enableMemory();
      assert.equal(other.bar(0).read32(0), EDU_ID);
    } else {
      dev.hotReset(); // one group (legacy: its fd; cdev: owned through the group)
    }
    dev.config.enableMemory();
    assert.equal(dev.bar(0).read32(0), EDU_ID, "edu answers after the reset");
  });
});
