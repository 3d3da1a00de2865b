// Mediated-device sysfs parsing on a fake tree shaped like the one the guest shows with mtty loaded (parent
// /sys/devices/virtual/mtty/mtty, types mtty-1/mtty-2, one instance in emulated-IOMMU group 9), and the three
// group types. The kernel's behaviour is checked in the guest by tests/integration/mdev.test.ts.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { VfioError } from "../../lib/errors.ts";
import { iommuGroup } from "../../lib/sysfs/iommu_group.ts";
import {
  createMdev,
  isMdevOpen,
  isMdevUuid,
  listMdevParents,
  listMediatedDevices,
  markMdevOpen,
  mdevTypes,
  mediatedDevice,
  removeMdev,
} from "../../lib/sysfs/mdev.ts";

const UUID = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";
const PARENT = "/sys/devices/virtual/mtty/mtty";
let root = "";

function file(path: string, text: string): void {
  const p = join(root, path);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, text);
}

function link(path: string, target: string): void {
  const p = join(root, path);
  mkdirSync(dirname(p), { recursive: true });
  symlinkSync(target, p);
}

function fakeType(id: string, name: string, available: number): void {
  const dir = `${PARENT}/mdev_supported_types/${id}`;
  file(`${dir}/name`, `${name}\n`);
  file(`${dir}/available_instances`, `${available}\n`);
  file(`${dir}/device_api`, "vfio-pci\n");
  file(`${dir}/create`, "");
  mkdirSync(join(root, `${dir}/devices`), { recursive: true });
}

before(() => {
  root = mkdtempSync(join(tmpdir(), "vfio-ts-mdev-"));
  link("/sys/class/mdev_bus/mtty", "../../devices/virtual/mtty/mtty");
  fakeType("mtty-1", "Single port serial", 22);
  fakeType("mtty-2", "Dual port serial", 0);
  const dev = `${PARENT}/${UUID}`;
  mkdirSync(join(root, `${dev}/vfio-dev/vfio5`), { recursive: true });
  file(`${dev}/remove`, "");
  link(`${dev}/mdev_type`, "../mdev_supported_types/mtty-2");
  link(`${dev}/iommu_group`, "../../../../../kernel/iommu_groups/9");
  link(`${dev}/driver`, "../../../../../bus/mdev/drivers/mtty");
  link(`${dev}/subsystem`, "../../../../../bus/mdev");
  link(`${PARENT}/mdev_supported_types/mtty-2/devices/${UUID}`, `../../../${UUID}`);
  link(`/sys/bus/mdev/devices/${UUID}`, `../../../devices/virtual/mtty/mtty/${UUID}`);
  // group 9: emulated IOMMU (vfio names it vfio-noiommu too), node /dev/vfio/9
  file("/sys/kernel/iommu_groups/9/name", "vfio-noiommu\n");
  file("/sys/kernel/iommu_groups/9/type", "unknown\n");
  link(`/sys/kernel/iommu_groups/9/devices/${UUID}`, `../../../../devices/virtual/mtty/mtty/${UUID}`);
  file("/dev/vfio/9", "");
  file("/dev/vfio/devices/vfio5", "");
  // group 10: no-IOMMU PCI device, node /dev/vfio/noiommu-10; group 3: a real IOMMU
  file("/sys/kernel/iommu_groups/10/name", "vfio-noiommu\n");
  mkdirSync(join(root, "/sys/devices/pci0000:00/0000:00:03.0"), { recursive: true });
  link("/sys/kernel/iommu_groups/10/devices/0000:00:03.0", "../../../../devices/pci0000:00/0000:00:03.0");
  file("/dev/vfio/noiommu-10", "");
  file("/sys/kernel/iommu_groups/3/type", "DMA\n");
  mkdirSync(join(root, "/sys/kernel/iommu_groups/3/devices"), { recursive: true });
});

after(() => rmSync(root, { recursive: true, force: true }));

describe("mediated devices in sysfs", () => {
  it("lists the parent, its types and the instance", () => {
    const [p] = listMdevParents({ root });
    assert.equal(p.name, "mtty");
    assert.equal(p.sysfsPath, join(root, PARENT));
    assert.deepEqual(
      p.types.map((t) => [t.id, t.name, t.description, t.availableInstances, t.deviceApi, t.instances]),
      [
        ["mtty-1", "Single port serial", null, 22, "vfio-pci", []],
        ["mtty-2", "Dual port serial", null, 0, "vfio-pci", [UUID]],
      ],
    );
    const [m] = listMediatedDevices({ root });
    assert.deepEqual(m, {
      uuid: UUID,
      parent: "mtty",
      type: "mtty-2",
      typeName: "Dual port serial",
      driver: "mtty",
      iommuGroup: 9,
      vfioDevice: "vfio5",
      vfioDevicePath: "/dev/vfio/devices/vfio5",
      sysfsPath: join(root, PARENT, UUID),
    });
    assert.equal(mediatedDevice(UUID.toUpperCase(), { root }).uuid, UUID);
  });

  it("tells the three group types apart", () => {
    assert.deepEqual([iommuGroup(9, { root }).groupType, iommuGroup(9, { root }).vfioPath], [
      "emulated-iommu",
      "/dev/vfio/9",
    ]);
    const noiommu = iommuGroup(10, { root });
    assert.deepEqual([noiommu.groupType, noiommu.noiommu, noiommu.vfioPath], [
      "noiommu",
      true,
      "/dev/vfio/noiommu-10",
    ]);
    assert.equal(iommuGroup(3, { root }).groupType, "iommu");
  });

  it("creates by writing the UUID to the type's create file, after checking type and room", () => {
    const made = createMdev("mtty", "mtty-1", { root, uuid: "11111111-2222-3333-4444-555555555555" });
    assert.equal(made, "11111111-2222-3333-4444-555555555555");
    assert.equal(readFileSync(join(root, PARENT, "mdev_supported_types/mtty-1/create"), "utf8"), made);
    assert.ok(isMdevUuid(createMdev("mtty", "mtty-1", { root })), "a random UUID by default");
  });

  it("refuses with errors that name the way out", () => {
    const err = (re: RegExp) => (e: unknown): boolean => e instanceof VfioError && re.test(e.message);
    assert.throws(
      () => createMdev("mtty", "mtty-3", { root }),
      err(/its types: mtty-1 \(Single port serial\), mtty-2/),
    );
    assert.throws(
      () => createMdev("mtty", "mtty-2", { root }),
      err(/no mtty-2 instance available.*1 of this type exist.*mtty-1 \(22\)/),
    );
    assert.throws(() => createMdev("gpu", "x", { root }), err(/no mediated-device parent "gpu".*parents here: mtty/));
    assert.throws(() => createMdev("mtty", "mtty-1", { root, uuid: UUID }), err(/already exists/));
    assert.throws(() => createMdev("mtty", "mtty-1", { root, uuid: "xyz" }), err(/is not a UUID/));
    assert.throws(() => mediatedDevice("00000000-0000-0000-0000-000000000000", { root }), err(/mediated devices here/));
  });

  it("removes by writing 1, but not while this process has the device open", () => {
    markMdevOpen(UUID, true);
    assert.equal(isMdevOpen(UUID), true);
    assert.throws(() => removeMdev(UUID, { root }), /open in this process/);
    markMdevOpen(UUID, false);
    removeMdev(UUID, { root });
    assert.equal(readFileSync(join(root, PARENT, UUID, "remove"), "utf8"), "1");
  });

  it("reads nothing when mdev is not loaded", () => {
    const empty = { root: join(root, "nowhere") };
    assert.deepEqual([listMdevParents(empty), listMediatedDevices(empty)], [[], []]);
    assert.throws(() => mdevTypes("mtty", empty), /modprobe mtty/);
  });
});
