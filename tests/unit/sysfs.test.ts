// Parsing of sysfs/procfs on a fake tree built in a temp dir: device info, IOMMU groups and viability, the bind
// plan of a dry run, no-IOMMU status, capabilities and hugepage pools. This tests the parsers and the plans, not
// the kernel: the kernel's behaviour is checked in the guest by tests/integration/sysfs.test.ts.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  GroupNotViableError,
  InvalidAddressError,
  NoiommuError,
  UnsupportedError,
  VfioError,
} from "../../lib/errors.ts";
import { bindToVfio, describeStep, recordedDriver, restoreDriver, unbind, vfioHolders } from "../../lib/sysfs/bind.ts";
import { hugepageStatus, reserveHugepages } from "../../lib/sysfs/hugepages.ts";
import {
  driverKeepsGroupViable,
  groupViabilityBlockers,
  iommuGroup,
  iommuGroupMembers,
  listIommuGroups,
} from "../../lib/sysfs/iommu_group.ts";
import { disableNoiommu, enableNoiommu, noiommuStatus } from "../../lib/sysfs/noiommu.ts";
import { findPciDevices, listPciDevices, parsePciId, parseResources, pciDevice } from "../../lib/sysfs/pci.ts";
import { checkNoiommuPrivileges, hasCapability, processPrivileges } from "../../lib/sysfs/privileges.ts";
import { treeFile, treeLink } from "./fake_tree.ts";

// ---------------------------------------------------------------------------------------------------------------
// A fake tree shaped like the kernel's (symlinks included)
// ---------------------------------------------------------------------------------------------------------------

let root = "";

const file = (path: string, text: string): void => treeFile(root, path, text);
const link = (path: string, target: string): void => treeLink(root, path, target);

const ZERO = "0x0000000000000000 0x0000000000000000 0x0000000000000000\n";

interface FakeDevice {
  address: string;
  vendor: string;
  device: string;
  class: string;
  driver?: string;
  group?: number;
  override?: string;
  resource: string;
  vfio?: string;
}

function fakeDevice(d: FakeDevice): void {
  const dir = `/sys/devices/pci0000:00/${d.address}`;
  file(`${dir}/vendor`, `${d.vendor}\n`);
  file(`${dir}/device`, `${d.device}\n`);
  file(`${dir}/subsystem_vendor`, "0x1af4\n");
  file(`${dir}/subsystem_device`, "0x1100\n");
  file(`${dir}/class`, `${d.class}\n`);
  file(`${dir}/revision`, "0x10\n");
  file(`${dir}/irq`, "11\n");
  file(`${dir}/numa_node`, "-1\n");
  file(`${dir}/enable`, "1\n");
  file(`${dir}/driver_override`, `${d.override ?? "(null)"}\n`);
  file(`${dir}/resource`, d.resource);
  link(`/sys/bus/pci/devices/${d.address}`, `../../../devices/pci0000:00/${d.address}`);
  if (d.driver) link(`${dir}/driver`, `../../../bus/pci/drivers/${d.driver}`);
  if (d.group !== undefined) {
    link(`${dir}/iommu_group`, `../../../kernel/iommu_groups/${d.group}`);
    link(`/sys/kernel/iommu_groups/${d.group}/devices/${d.address}`, `../../../../devices/pci0000:00/${d.address}`);
  }
  if (d.vfio) mkdirSync(join(root, `${dir}/vfio-dev/${d.vfio}`), { recursive: true });
}

const EDU_RESOURCE = "0x00000000fea00000 0x00000000feafffff 0x0000000000040200\n" + ZERO.repeat(12);
const NVME_RESOURCE = "0x00000000febf0000 0x00000000febf3fff 0x0000000000140204\n" + ZERO.repeat(3) +
  "0x000000000000c000 0x000000000000c01f 0x0000000000040101\n" + ZERO +
  "0x00000000feb80000 0x00000000febbffff 0x0000000000046200\n" + ZERO.repeat(6);
const PREFETCH64_RESOURCE = "0x0000004000000000 0x000000400007ffff 0x000000000014220c\n" + ZERO.repeat(12);

before(() => {
  root = mkdtempSync(join(tmpdir(), "vfio-ts-sysfs-"));
  for (const d of ["e1000e", "vfio-pci", "pcieport", "snd_hda_intel", "nvme"]) {
    file(`/sys/bus/pci/drivers/${d}/bind`, "");
    file(`/sys/bus/pci/drivers/${d}/unbind`, "");
  }
  file("/sys/bus/pci/drivers_probe", "");
  mkdirSync(join(root, "run")); // the records' parent, as on a real system (root-owned, mode 0755)
  file("/proc/sys/kernel/osrelease", "6.12.0-test\n");
  file("/lib/modules/6.12.0-test/modules.dep", "kernel/drivers/net/ethernet/intel/igb/igb.ko.xz: kernel/lib/x.ko\n");
  // edu on vfio-pci in group 3 with a cdev; nvme on nvme in group 4 with an audio function on a foreign driver;
  // a bridge in group 4 on pcieport; a device with no IOMMU group on e1000e.
  fakeDevice({
    address: "0000:00:03.0",
    vendor: "0x1234",
    device: "0x11e8",
    class: "0x00ff00",
    driver: "vfio-pci",
    group: 3,
    override: "vfio-pci",
    resource: EDU_RESOURCE,
    vfio: "vfio0",
  });
  fakeDevice({
    address: "0000:00:04.0",
    vendor: "0x1b36",
    device: "0x0010",
    class: "0x010802",
    driver: "nvme",
    group: 4,
    resource: NVME_RESOURCE,
  });
  fakeDevice({
    address: "0000:00:04.1",
    vendor: "0x8086",
    device: "0x293e",
    class: "0x040300",
    driver: "snd_hda_intel",
    group: 4,
    resource: PREFETCH64_RESOURCE,
  });
  fakeDevice({
    address: "0000:00:1c.0",
    vendor: "0x8086",
    device: "0x2448",
    class: "0x060400",
    driver: "pcieport",
    group: 4,
    resource: ZERO.repeat(17),
  });
  fakeDevice({
    address: "0000:00:05.0",
    vendor: "0x8086",
    device: "0x10d3",
    class: "0x020000",
    driver: "e1000e",
    resource: EDU_RESOURCE,
  });
  fakeDevice({
    address: "0000:00:06.0",
    vendor: "0x1af4",
    device: "0x1000",
    class: "0x020000",
    resource: NVME_RESOURCE,
  });
  file("/sys/kernel/iommu_groups/3/type", "DMA\n");
  file("/sys/kernel/iommu_groups/4/type", "DMA-FQ\n");
  file("/sys/kernel/iommu_groups/10/name", "vfio-noiommu\n");
  file("/sys/kernel/iommu_groups/10/type", "unknown\n");
  mkdirSync(join(root, "/sys/kernel/iommu_groups/10/devices"), { recursive: true });
  file("/dev/vfio/3", "");
  file("/dev/vfio/noiommu-10", "");
});

after(() => {
  rmSync(root, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------------

describe("parseResources", () => {
  it("reads a 32-bit memory BAR", () => {
    const [bar0] = parseResources(EDU_RESOURCE);
    assert.equal(bar0.index, 0);
    assert.equal(bar0.start, 0xfea00000n);
    assert.equal(bar0.end, 0xfeafffffn);
    assert.equal(bar0.size, 0x100000n);
    assert.equal(bar0.kind, "memory");
    assert.equal(bar0.is64Bit, false);
    assert.equal(bar0.prefetchable, false);
  });

  it("tells 64-bit, I/O, ROM and unused lines apart", () => {
    const r = parseResources(NVME_RESOURCE);
    assert.equal(r.length, 13);
    assert.equal(r[0].is64Bit, true);
    assert.equal(r[0].size, 0x4000n);
    assert.equal(r[1].kind, "none");
    assert.equal(r[1].size, 0n);
    assert.equal(r[4].kind, "io");
    assert.equal(r[4].size, 0x20n);
    assert.equal(r[6].readOnly, true); // expansion ROM
    assert.equal(r[6].kind, "memory");
  });

  it("passes over malformed lines (a damaged or fake tree) instead of throwing BigInt's SyntaxError", () => {
    const r = parseResources("-0x1 -0x1 -0x1\n0x 0 0\n" + EDU_RESOURCE);
    assert.equal(r.length, 13); // the two malformed lines are no resources; edu's 13 lines follow them
    assert.equal(r[0].index, 2);
    assert.equal(r[0].kind, "memory");
  });

  it("sees a prefetchable 64-bit BAR above 4 GiB", () => {
    const [bar] = parseResources(PREFETCH64_RESOURCE);
    assert.equal(bar.start, 0x4000000000n);
    assert.equal(bar.prefetchable, true);
    assert.equal(bar.is64Bit, true);
  });

  it("copes with an empty file", () => {
    assert.deepEqual(parseResources(""), []);
  });
});

describe("pciDevice", () => {
  it("reads everything about a device on vfio-pci", () => {
    const d = pciDevice("00:03.0", { root });
    assert.equal(d.address, "0000:00:03.0");
    assert.equal(d.vendor, 0x1234);
    assert.equal(d.device, 0x11e8);
    assert.equal(d.subsystemVendor, 0x1af4);
    assert.equal(d.subsystemDevice, 0x1100);
    assert.equal(d.class, 0x00ff00);
    assert.equal(d.revision, 0x10);
    assert.equal(d.driver, "vfio-pci");
    assert.equal(d.driverOverride, "vfio-pci");
    assert.equal(d.iommuGroup, 3);
    assert.equal(d.numaNode, null);
    assert.equal(d.irq, 11);
    assert.equal(d.vfioDevice, "vfio0");
    assert.equal(d.vfioDevicePath, null); // no /dev node (as for no-IOMMU devices)
    assert.equal(d.enabled, true);
    assert.deepEqual(d.bars.map((b) => [b.index, b.size]), [[0, 0x100000n]]);
    assert.equal(d.resources.length, 13);
  });

  it("reports no driver, no override, no group and no cdev as null", () => {
    const d = pciDevice("0000:00:06.0", { root });
    assert.equal(d.driver, null);
    assert.equal(d.driverOverride, null);
    assert.equal(d.iommuGroup, null);
    assert.equal(d.vfioDevice, null);
    assert.deepEqual(d.bars.map((b) => b.index), [0, 4]);
  });

  it("throws InvalidAddressError for a device that is not there", () => {
    assert.throws(() => pciDevice("0000:00:1f.7", { root }), (e: unknown) => {
      assert.ok(e instanceof InvalidAddressError);
      assert.match(e.message, /no PCI device 0000:00:1f\.7 on this machine/);
      assert.match(e.message, /`vfio status` lists them/);
      return true;
    });
  });

  it("throws InvalidAddressError for a malformed address", () => {
    assert.throws(() => pciDevice("00:03", { root }), InvalidAddressError);
  });
});

describe("listPciDevices / findPciDevices", () => {
  it("lists every device sorted by address", () => {
    assert.deepEqual(listPciDevices({ root }).map((d) => d.address), [
      "0000:00:03.0",
      "0000:00:04.0",
      "0000:00:04.1",
      "0000:00:05.0",
      "0000:00:06.0",
      "0000:00:1c.0",
    ]);
  });

  it("finds by vendor:device text", () => {
    assert.deepEqual(findPciDevices("1234:11e8", { root }).map((d) => d.address), ["0000:00:03.0"]);
    assert.deepEqual(findPciDevices("8086:*", { root }).map((d) => d.address), [
      "0000:00:04.1",
      "0000:00:05.0",
      "0000:00:1c.0",
    ]);
  });

  it("finds by class, exact or masked", () => {
    assert.deepEqual(findPciDevices({ class: 0x010802 }, { root }).map((d) => d.address), ["0000:00:04.0"]);
    assert.deepEqual(findPciDevices({ class: 0x020000, classMask: 0xff0000 }, { root }).map((d) => d.address), [
      "0000:00:05.0",
      "0000:00:06.0",
    ]);
    assert.deepEqual(findPciDevices({ vendor: 0x1af4, class: 0x020000 }, { root }).map((d) => d.address), [
      "0000:00:06.0",
    ]);
  });

  it("rejects a malformed id pair", () => {
    assert.deepEqual(parsePciId("1b36:0010"), { vendor: 0x1b36, device: 0x10 });
    assert.throws(() => parsePciId("1234-11e8"), VfioError);
    assert.throws(() => parsePciId("12345:0001"), /vendor:device/);
  });

  it("returns nothing on a machine without PCI", () => {
    assert.deepEqual(listPciDevices({ root: join(root, "nowhere") }), []);
  });
});

describe("IOMMU groups", () => {
  it("lists groups numerically", () => {
    assert.deepEqual(listIommuGroups({ root }), [3, 4, 10]);
    assert.deepEqual(listIommuGroups({ root: join(root, "nowhere") }), []);
  });

  it("lists members with their drivers", () => {
    assert.deepEqual(iommuGroupMembers(4, { root }), [
      { address: "0000:00:04.0", driver: "nvme" },
      { address: "0000:00:04.1", driver: "snd_hda_intel" },
      { address: "0000:00:1c.0", driver: "pcieport" },
    ]);
  });

  it("describes a normal group", () => {
    const g = iommuGroup(3, { root });
    assert.equal(g.type, "DMA");
    assert.equal(g.noiommu, false);
    assert.equal(g.vfioPath, "/dev/vfio/3");
    assert.equal(g.vfioPathExists, true);
  });

  it("recognises a no-IOMMU group", () => {
    const g = iommuGroup(10, { root });
    assert.equal(g.name, "vfio-noiommu");
    assert.equal(g.noiommu, true);
    assert.equal(g.vfioPath, "/dev/vfio/noiommu-10");
    assert.equal(g.vfioPathExists, true);
  });

  it("names the members that block viability, not bridges or vfio-pci", () => {
    assert.deepEqual(groupViabilityBlockers(3, { root }), []);
    const blockers = groupViabilityBlockers(4, { root });
    assert.deepEqual(blockers, [
      { address: "0000:00:04.0", driver: "nvme" },
      { address: "0000:00:04.1", driver: "snd_hda_intel" },
    ]);
    const e = new GroupNotViableError(4, blockers);
    assert.match(e.message, /0000:00:04\.1 \(snd_hda_intel\)/);
  });

  it("knows which drivers leave a group viable", () => {
    for (const d of [null, "vfio-pci", "pcieport", "pci-stub", "mlx5_vfio_pci", "vfio-pci-core"]) {
      assert.equal(driverKeepsGroupViable(d), true, String(d));
    }
    for (const d of ["nvme", "e1000e", "snd_hda_intel", "xhci_hcd"]) assert.equal(driverKeepsGroupViable(d), false, d);
  });

  it("says when a group does not exist", () => {
    assert.throws(() => iommuGroupMembers(99, { root }), /there is no IOMMU group 99/);
    assert.throws(() => iommuGroupMembers(-1, { root }), /invalid IOMMU group number/);
  });
});

describe("bind plans (dry run)", () => {
  it("plans override, unbind and probe for a device on another driver", () => {
    const r = bindToVfio("0000:00:05.0", { root, dryRun: true });
    assert.equal(r.dryRun, true);
    assert.equal(r.alreadyBound, false);
    assert.equal(r.previousDriver, "e1000e");
    assert.deepEqual(r.steps.map(describeStep), [
      `echo vfio-pci > ${root}/sys/bus/pci/devices/0000:00:05.0/driver_override`,
      `echo 0000:00:05.0 > ${root}/sys/bus/pci/drivers/e1000e/unbind`,
      `echo 0000:00:05.0 > ${root}/sys/bus/pci/drivers_probe`,
    ]);
    assert.equal(pciDevice("0000:00:05.0", { root }).driverOverride, null); // nothing written
    assert.equal(recordedDriver("0000:00:05.0", { root }), null);
  });

  it("needs no unbind for a device without a driver", () => {
    const r = bindToVfio("00:06.0", { root, dryRun: true });
    assert.deepEqual(r.steps.map((s) => s.kind === "write" && s.path.split("/").pop()), [
      "driver_override",
      "drivers_probe",
    ]);
  });

  it("does nothing for a device already on vfio-pci", () => {
    const r = bindToVfio("0000:00:03.0", { root });
    assert.equal(r.alreadyBound, true);
    assert.deepEqual(r.steps, []);
  });

  it("plans a modprobe when vfio-pci is not loaded, or refuses when told not to load it", () => {
    const bare = mkdtempSync(join(tmpdir(), "vfio-ts-bare-"));
    try {
      mkdirSync(join(bare, "sys/bus/pci/devices/0000:00:05.0"), { recursive: true });
      writeFileSync(join(bare, "sys/bus/pci/devices/0000:00:05.0/vendor"), "0x8086\n");
      const r = bindToVfio("0000:00:05.0", { root: bare, dryRun: true });
      assert.equal(describeStep(r.steps[0]), "modprobe vfio-pci");
      assert.throws(() => bindToVfio("0000:00:05.0", { root: bare, loadModule: false }), /modprobe vfio-pci/);
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  });

  it("plans the unbind of the current driver", () => {
    const r = unbind("0000:00:04.0", { root, dryRun: true });
    assert.equal(r.previousDriver, "nvme");
    assert.deepEqual(r.steps.map(describeStep), [`echo 0000:00:04.0 > ${root}/sys/bus/pci/drivers/nvme/unbind`]);
    assert.deepEqual(unbind("0000:00:06.0", { root, dryRun: true }).steps, []);
  });

  it("plans a restore to the kernel's choice when nothing is recorded", () => {
    const r = restoreDriver("0000:00:03.0", { root, dryRun: true });
    assert.equal(r.driver, undefined);
    assert.deepEqual(r.steps.map(describeStep), [
      `echo > ${root}/sys/bus/pci/devices/0000:00:03.0/driver_override`,
      `echo 0000:00:03.0 > ${root}/sys/bus/pci/drivers/vfio-pci/unbind`,
      `echo 0000:00:03.0 > ${root}/sys/bus/pci/drivers_probe`,
    ]);
  });

  it("plans a restore to a named driver", () => {
    const r = restoreDriver("0000:00:03.0", { root, dryRun: true, driver: "e1000e" });
    assert.deepEqual(r.steps.map(describeStep).slice(1), [
      `echo 0000:00:03.0 > ${root}/sys/bus/pci/drivers/vfio-pci/unbind`,
      `echo 0000:00:03.0 > ${root}/sys/bus/pci/drivers/e1000e/bind`,
    ]);
    const missing = restoreDriver("0000:00:03.0", { root, dryRun: true, driver: "igb" });
    assert.deepEqual(missing.steps.map(describeStep).slice(2), [
      "modprobe igb",
      `echo 0000:00:03.0 > ${root}/sys/bus/pci/drivers_probe`,
    ]);
  });
});

describe("VFIO holders", () => {
  it("finds processes holding the group or cdev and refuses to unbind under them", () => {
    file("/dev/vfio/devices/vfio0", "");
    assert.equal(pciDevice("0000:00:03.0", { root }).vfioDevicePath, "/dev/vfio/devices/vfio0");
    file("/proc/4242/comm", "deno\n");
    link("/proc/4242/fd/7", "/dev/vfio/3");
    link("/proc/4242/fd/8", "/dev/null");
    link("/proc/4243/fd/3", "/dev/vfio/devices/vfio0");
    assert.deepEqual(vfioHolders("0000:00:03.0", { root }), [
      { pid: 4242, command: "deno", path: "/dev/vfio/3" },
      { pid: 4243, command: "?", path: "/dev/vfio/devices/vfio0" },
    ]);
    assert.deepEqual(vfioHolders("0000:00:05.0", { root }), []);
    assert.throws(() => unbind("0000:00:03.0", { root }), (e: unknown) => {
      assert.ok(e instanceof VfioError);
      assert.match(e.message, /in use through VFIO: pid 4242 \(deno\) holds \/dev\/vfio\/3, pid 4243 \(\?\)/);
      assert.match(e.message, /would block/);
      return true;
    });
    assert.throws(() => restoreDriver("0000:00:03.0", { root }), /in use through VFIO/);
    assert.equal(readFileSync(join(root, "sys/bus/pci/drivers/vfio-pci/unbind"), "utf8"), ""); // nothing written
    rmSync(join(root, "proc/4242"), { recursive: true });
    rmSync(join(root, "proc/4243"), { recursive: true });
  });
});

describe("bind failure diagnosis (writes land in the fake tree; no kernel acts on them)", () => {
  it("blames missing no-IOMMU mode for a device without a group, puts the driver back, keeps no record", () => {
    file("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "N\n");
    assert.throws(() => bindToVfio("0000:00:05.0", { root }), (e: unknown) => {
      assert.ok(e instanceof NoiommuError);
      assert.match(e.message, /did not bind to vfio-pci \(driver now: e1000e\)/);
      assert.match(e.message, /no IOMMU group and VFIO no-IOMMU mode is off/);
      assert.match(e.message, /enableNoiommu\(\{ iUnderstandTheRisk: true \}\)/);
      return true;
    });
    assert.equal(readFileSync(join(root, "sys/bus/pci/drivers/e1000e/unbind"), "utf8"), "0000:00:05.0");
    assert.equal(readFileSync(join(root, "sys/bus/pci/drivers_probe"), "utf8"), "0000:00:05.0");
    assert.equal(readFileSync(join(root, "sys/bus/pci/devices/0000:00:05.0/driver_override"), "utf8"), "\n");
    assert.equal(recordedDriver("0000:00:05.0", { root }), null); // restored: record forgotten
  });

  it("records the original driver where a later process finds it", () => {
    // a record left by an earlier bind
    file("/run/vfio-ts/0000:00:04.0.json", JSON.stringify({ address: "0000:00:04.0", driver: "nvme" }));
    assert.deepEqual(recordedDriver("0000:00:04.0", { root }), {
      address: "0000:00:04.0",
      driver: "nvme",
      driverOverride: null,
    });
    const plan = restoreDriver("0000:00:04.0", { root, dryRun: true });
    assert.equal(plan.driver, "nvme");
    assert.deepEqual(plan.steps, []); // already on nvme, no override to clear
  });
});

describe("no-IOMMU mode", () => {
  it("is unknown while vfio is not loaded", () => {
    const s = noiommuStatus({ root: join(root, "nowhere") });
    assert.equal(s.vfioLoaded, false);
    assert.equal(s.supported, "unknown");
    assert.equal(s.enabled, false);
    assert.match(s.summary, /load vfio/);
  });

  it("is unsupported when vfio is loaded without the parameter", () => {
    const other = mkdtempSync(join(tmpdir(), "vfio-ts-noparam-"));
    try {
      mkdirSync(join(other, "sys/module/vfio/parameters"), { recursive: true });
      const s = noiommuStatus({ root: other });
      assert.equal(s.supported, false);
      assert.match(s.summary, /CONFIG_VFIO_NOIOMMU/);
      assert.throws(() => enableNoiommu({ iUnderstandTheRisk: true, root: other }), (e: unknown) => {
        assert.ok(e instanceof NoiommuError);
        assert.match(e.message, /CONFIG_VFIO_NOIOMMU/);
        return true;
      });
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it("reads Y and N and lists the noiommu groups", () => {
    file("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "N\n");
    assert.deepEqual([noiommuStatus({ root }).supported, noiommuStatus({ root }).enabled], [true, false]);
    file("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "Y\n");
    const s = noiommuStatus({ root });
    assert.equal(s.enabled, true);
    assert.deepEqual(s.groups, [10]);
    assert.match(s.summary, /taints the kernel/);
  });

  it("refuses to enable without the explicit opt-in", () => {
    file("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "N\n");
    assert.throws(
      () => enableNoiommu({ root } as unknown as Parameters<typeof enableNoiommu>[0]),
      (e: unknown) => {
        assert.ok(e instanceof NoiommuError);
        assert.match(e.message, /explicit opt-in/);
        assert.match(e.message, /DMA to any physical memory/);
        assert.match(e.message, /iUnderstandTheRisk: true/);
        return true;
      },
    );
    assert.equal(readFileSync(join(root, "sys/module/vfio/parameters/enable_unsafe_noiommu_mode"), "utf8"), "N\n");
  });

  it("writes 1 to enable and 0 to disable", () => {
    file("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "N\n");
    // the fake file keeps what is written; "1" reads back as enabled like the kernel's "Y"
    assert.equal(enableNoiommu({ iUnderstandTheRisk: true, root }).enabled, true);
    assert.equal(readFileSync(join(root, "sys/module/vfio/parameters/enable_unsafe_noiommu_mode"), "utf8"), "1");
    assert.equal(disableNoiommu({ root }).enabled, false);
  });
});

describe("privileges", () => {
  const status = (capEff: string, uid = "0"): void =>
    file(
      "/proc/self/status",
      `Name:\tdeno\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nCapInh:\t0000000000000000\nCapPrm:\t${capEff}\n` +
        `CapEff:\t${capEff}\nCapBnd:\t000001ffffffffff\n`,
    );
  const limits = (soft: string, hard: string): void =>
    file(
      "/proc/self/limits",
      "Limit                     Soft Limit           Hard Limit           Units     \n" +
        `Max locked memory         ${soft.padEnd(21)}${hard.padEnd(21)}bytes     \n`,
    );

  it("reads the effective set, the uid and RLIMIT_MEMLOCK", () => {
    status("000001ffffffffff");
    limits("8388608", "unlimited");
    const p = processPrivileges({ root });
    assert.equal(p.euid, 0);
    assert.equal(p.effective, 0x1ffffffffffn);
    assert.equal(p.memlockSoft, 8388608);
    assert.equal(p.memlockHard, Infinity);
    assert.equal(hasCapability("CAP_SYS_RAWIO", { root }), true);
    assert.equal(hasCapability(40, { root }), true);
  });

  it("tests single bits", () => {
    status((1n << 17n).toString(16).padStart(16, "0"), "1000"); // only CAP_SYS_RAWIO
    assert.equal(hasCapability("CAP_SYS_RAWIO", { root }), true);
    assert.equal(hasCapability("CAP_SYS_ADMIN", { root }), false);
    assert.equal(hasCapability("CAP_IPC_LOCK", { root }), false);
    assert.throws(() => hasCapability(64, { root }), /unknown capability/);
  });

  it("names every missing capability for no-IOMMU use", () => {
    status("0000000000000000", "1000");
    limits("65536", "65536");
    assert.throws(() => checkNoiommuPrivileges({ root, lockedBytes: 1 << 20 }), (e: unknown) => {
      assert.ok(e instanceof VfioError);
      assert.match(e.message, /CAP_SYS_RAWIO \(to open a no-IOMMU group/);
      assert.match(e.message, /CAP_SYS_ADMIN \(to read physical addresses/);
      assert.match(e.message, /CAP_IPC_LOCK or an RLIMIT_MEMLOCK of at least 1048576 bytes/);
      assert.match(e.message, /setcap/);
      return true;
    });
  });

  it("passes with the right capabilities, or with a big enough memlock limit", () => {
    const bits = (1n << 17n) | (1n << 21n);
    status(bits.toString(16).padStart(16, "0"), "1000");
    limits("unlimited", "unlimited");
    checkNoiommuPrivileges({ root, lockedBytes: 1 << 30 });
    limits("65536", "65536");
    assert.throws(() => checkNoiommuPrivileges({ root, lockedBytes: 1 << 20 }), /RLIMIT_MEMLOCK/);
    checkNoiommuPrivileges({ root, lockedBytes: 4096 });
    status((bits | (1n << 14n)).toString(16).padStart(16, "0"), "1000");
    checkNoiommuPrivileges({ root, lockedBytes: 1 << 30 });
    status((1n << 17n).toString(16).padStart(16, "0"), "1000");
    checkNoiommuPrivileges({ root, physicalAddresses: false });
  });
});

describe("hugepages", () => {
  before(() => {
    file(
      "/proc/meminfo",
      "MemTotal:        2000000 kB\nHugePages_Total:       4\nHugePages_Free:        3\nHugePages_Rsvd:        1\n" +
        "HugePages_Surp:        0\nHugepagesize:       2048 kB\n",
    );
    const pool = (size: number, nr: number, free: number, resv: number): void => {
      const dir = `/sys/kernel/mm/hugepages/hugepages-${size}kB`;
      file(`${dir}/nr_hugepages`, `${nr}\n`);
      file(`${dir}/free_hugepages`, `${free}\n`);
      file(`${dir}/resv_hugepages`, `${resv}\n`);
      file(`${dir}/surplus_hugepages`, "0\n");
    };
    pool(2048, 4, 3, 1);
    pool(1048576, 0, 0, 0);
  });

  it("reads /proc/meminfo and every pool", () => {
    const s = hugepageStatus({ root });
    assert.equal(s.defaultSizeKiB, 2048);
    assert.equal(s.total, 4);
    assert.equal(s.free, 3);
    assert.deepEqual(s.pools, [
      { sizeKiB: 2048, total: 4, free: 3, reserved: 1, surplus: 0 },
      { sizeKiB: 1048576, total: 0, free: 0, reserved: 0, surplus: 0 },
    ]);
  });

  it("does nothing when enough pages are free (free minus reserved)", () => {
    assert.equal(reserveHugepages(2, 2048, { root }).total, 4);
    assert.equal(readFileSync(join(root, "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"), "utf8"), "4\n");
  });

  it("grows the pool by the shortfall and reports when the kernel could not", () => {
    // the fake kernel does not hand out pages: free stays 3, so the check afterwards must fail
    assert.throws(() => reserveHugepages(5, 2048, { root }), (e: unknown) => {
      assert.ok(e instanceof VfioError);
      assert.match(
        e.message,
        /could not make 5 2048 kB hugepages available: the pool has 7 of the 7 asked for, 2 of them unused/,
      );
      assert.match(e.message, /hugepages=7/);
      return true;
    });
    assert.equal(readFileSync(join(root, "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"), "utf8"), "7");
  });

  it("rejects sizes the kernel lacks and bad counts", () => {
    assert.throws(() => reserveHugepages(1, 4096, { root }), (e: unknown) => {
      assert.ok(e instanceof UnsupportedError);
      assert.match(e.message, /no 4096 kB hugepages.*2048, 1048576 kB/);
      return true;
    });
    assert.throws(() => reserveHugepages(-1, 2048, { root }), /invalid hugepage count/);
    assert.throws(() => reserveHugepages(1.5, 2048, { root }), /invalid hugepage count/);
  });
});
