// The no-IOMMU opt-in and the INTx unmask decision, on fake trees and fake ioctl answers: only `{ noiommu: true }` (the
// CLI's --noiommu) opens a no-IOMMU group; `VFIO_TS_IOMMU=noiommu` and `{ iommu: "noiommu" }` are refused with a
// NoiommuError. openDevice runs on a fake sysfs tree and a fake /dev/vfio: a path that gets past the gate fails at
// the container open (no /dev/vfio/vfio in the fake tree), which shows which path was taken without any kernel.
// The kernel side (a real no-IOMMU group, a real INTx line) is in tests/integration/device.test.ts and irq.test.ts.
import assert from "node:assert/strict";
import { join } from "node:path";
import process from "node:process";
import { after, afterEach, before, describe, it } from "node:test";
import { DeviceBusyError, NoiommuError, SystemError, UnsupportedError, VfioError } from "../../lib/errors.ts";
import { nodeHolders } from "../../lib/group.ts";
import { IRQ_SET_FLAGS, irqSetRequest, unmasksBeforeWait } from "../../lib/irq.ts";
import { decodeIrqInfo, IrqIndex } from "../../lib/irq_info.ts";
import { openDevice, type OpenDeviceOptions } from "../../lib/open.ts";
import { FakeTree } from "./fake_tree.ts";

let tree: FakeTree;
let root = "";
const NOIOMMU_DEV = "0000:00:03.0"; // bound to vfio-pci in no-IOMMU group 10
const IOMMU_DEV = "0000:00:04.0"; // bound to vfio-pci in IOMMU group 3
const file = (path: string, text: string): void => tree.file(path, text);
const link = (path: string, target: string): void => tree.link(path, target);

function vfioDevice(address: string, group: number): void {
  const dir = `/sys/devices/pci0000:00/${address}`;
  file(`${dir}/vendor`, "0x1234\n");
  file(`${dir}/device`, "0x11e8\n");
  file(`${dir}/class`, "0x00ff00\n");
  file(`${dir}/driver_override`, "vfio-pci\n");
  file(`${dir}/resource`, "0x00000000fea00000 0x00000000feafffff 0x0000000000040200\n");
  link(`/sys/bus/pci/devices/${address}`, `../../../devices/pci0000:00/${address}`);
  link(`${dir}/driver`, "../../../bus/pci/drivers/vfio-pci");
  link(`${dir}/iommu_group`, `../../../kernel/iommu_groups/${group}`);
  link(`/sys/kernel/iommu_groups/${group}/devices/${address}`, `../../../../devices/pci0000:00/${address}`);
}

before(() => {
  tree = new FakeTree("vfio-ts-optin-");
  root = tree.root;
  vfioDevice(NOIOMMU_DEV, 10);
  vfioDevice(IOMMU_DEV, 3);
  file("/sys/kernel/iommu_groups/10/name", "vfio-noiommu\n");
  file("/dev/vfio/noiommu-10", "");
  file("/dev/vfio/3", "");
  // Every capability, as root has: the privilege check of no-IOMMU mode passes on the fake tree.
  file("/proc/self/status", "Name:\ttest\nUid:\t0\t0\t0\t0\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n");
  file("/proc/self/limits", "Max locked memory         unlimited            unlimited            bytes\n");
});

after(() => tree.remove());

const saved = process.env.VFIO_TS_IOMMU;
afterEach(() => {
  if (saved === undefined) delete process.env.VFIO_TS_IOMMU;
  else process.env.VFIO_TS_IOMMU = saved;
});

function open(address: string, options: OpenDeviceOptions = {}, env?: string): unknown {
  if (env === undefined) delete process.env.VFIO_TS_IOMMU;
  else process.env.VFIO_TS_IOMMU = env;
  try {
    openDevice(address, { sysfsRoot: root, devDir: join(root, "dev/vfio"), ...options }).close();
    return null;
  } catch (e) {
    return e;
  }
}

/** The error of a path that got past every check: the fake tree has no container node. */
function reachedContainer(e: unknown): boolean {
  return e instanceof SystemError && e.code === "ENOENT" && e.target === join(root, "dev/vfio/vfio");
}

describe("no-IOMMU opt-in", () => {
  it("VFIO_TS_IOMMU=noiommu is refused: the environment never asks for no-IOMMU mode", () => {
    for (const options of [{}, { noiommu: true }]) {
      const e = open(NOIOMMU_DEV, options, "noiommu");
      assert.ok(e instanceof NoiommuError, `a NoiommuError, got ${e}`);
      assert.match(e.message, /VFIO_TS_IOMMU=noiommu is not a way to ask/);
      assert.match(e.message, /noiommu: true.*--noiommu/);
    }
  });

  it("VFIO_TS_IOMMU=noiommu is refused for a device behind an IOMMU too", () => {
    const e = open(IOMMU_DEV, {}, "noiommu");
    assert.ok(e instanceof NoiommuError, `a NoiommuError, got ${e}`);
  });

  it('{ iommu: "noiommu" } (from JavaScript) is refused: { noiommu: true } is the one way to ask', () => {
    const e = open(NOIOMMU_DEV, { iommu: "noiommu" } as unknown as OpenDeviceOptions);
    assert.ok(e instanceof NoiommuError, `a NoiommuError, got ${e}`);
    assert.match(e.message, /iommu: "noiommu" is not a way to ask/);
  });

  it("no option at all refuses a no-IOMMU group", () => {
    const e = open(NOIOMMU_DEV);
    assert.ok(e instanceof NoiommuError, `a NoiommuError, got ${e}`);
    assert.match(e.message, /no-IOMMU group 10/);
  });

  it("{ noiommu: true } in the code is accepted, with or without a safe path in the environment", () => {
    for (const env of [undefined, "auto"]) {
      const e = open(NOIOMMU_DEV, { noiommu: true }, env);
      assert.ok(reachedContainer(e), `got past the opt-in (env ${env}): ${e}`);
    }
  });

  it("{ noiommu: true } for a device behind an IOMMU opens it through the IOMMU", () => {
    const e = open(IOMMU_DEV, { noiommu: true, iommu: "type1" });
    assert.ok(reachedContainer(e), `the type1 path: ${e}`);
  });

  it("the environment still chooses among the safe paths", () => {
    assert.ok(reachedContainer(open(IOMMU_DEV, {}, "type1")), "type1 from the environment");
    // The code's choice wins over the environment's.
    assert.ok(reachedContainer(open(IOMMU_DEV, { iommu: "type1" }, "iommufd")), "the code's type1");
    const e = open(NOIOMMU_DEV, { noiommu: true }, "type1");
    assert.ok(e instanceof UnsupportedError, `no type1 for a no-IOMMU group: ${e}`);
  });

  it("a bad VFIO_TS_IOMMU is a VfioError that lists the paths", () => {
    const e = open(IOMMU_DEV, {}, "yes-please");
    assert.ok(e instanceof VfioError && !(e instanceof SystemError), `a VfioError, got ${e}`);
    assert.match(e.message, /VFIO_TS_IOMMU=yes-please.*type1/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

/** A `struct vfio_irq_info` answer. */
function irqInfoBytes(flags: number, count: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint32(0, 16, true);
  v.setUint32(4, flags, true);
  v.setUint32(12, count, true);
  return b;
}

describe("INTx unmask decision", () => {
  // vfio-pci's answers: INTx is EVENTFD | MASKABLE | AUTOMASKED; MSI and MSI-X are EVENTFD | NORESIZE.
  const intx = decodeIrqInfo(IrqIndex.INTX, irqInfoBytes(0x7, 1));
  const msi = decodeIrqInfo(IrqIndex.MSI, irqInfoBytes(0x9, 1));

  it("decodes vfio-pci's INTx and MSI flags", () => {
    assert.deepEqual([intx.eventfd, intx.maskable, intx.automasked, intx.noresize], [true, true, true, false]);
    assert.deepEqual([msi.eventfd, msi.maskable, msi.automasked, msi.noresize], [true, false, false, true]);
    assert.equal(intx.count, 1);
  });

  it("a wait unmasks an automasked vector when the set or the wait asks for it", () => {
    assert.equal(unmasksBeforeWait(intx, true), true);
    assert.equal(unmasksBeforeWait(intx, false), false);
    assert.equal(unmasksBeforeWait(intx, false, true), true, "the wait's option overrides the set's");
    assert.equal(unmasksBeforeWait(intx, true, false), false, "the wait's option overrides the set's");
  });

  it("a vector the kernel does not automask is never unmasked", () => {
    assert.equal(unmasksBeforeWait(msi, true), false);
    assert.equal(unmasksBeforeWait(msi, true, true), false);
    // Maskable but not automasked: unmasking is the caller's business.
    assert.equal(unmasksBeforeWait(decodeIrqInfo(IrqIndex.INTX, irqInfoBytes(0x3, 1)), true), false);
  });

  it("the unmask request is DATA_NONE | ACTION_UNMASK for one vector", () => {
    const b = irqSetRequest(IrqIndex.INTX, IRQ_SET_FLAGS.unmask, 0, 1);
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    // argsz, flags (DATA_NONE 1 | ACTION_UNMASK 16), index, start, count
    assert.deepEqual([0, 4, 8, 12, 16].map((o) => v.getUint32(o, true)), [20, 0x11, 0, 0, 1]);
    assert.equal(IRQ_SET_FLAGS.mask, 0x09, "DATA_NONE | ACTION_MASK");
    assert.equal(IRQ_SET_FLAGS.route, 0x24, "DATA_EVENTFD | ACTION_TRIGGER");
    assert.equal(IRQ_SET_FLAGS.fire, 0x21, "DATA_NONE | ACTION_TRIGGER");
  });

  it("an eventfd route carries the fds after the header", () => {
    const b = irqSetRequest(IrqIndex.MSIX, IRQ_SET_FLAGS.route, 2, [7, -1]);
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    assert.deepEqual([0, 4, 8, 12, 16].map((o) => v.getUint32(o, true)), [28, 0x24, 2, 2, 2]);
    assert.deepEqual([v.getInt32(20, true), v.getInt32(24, true)], [7, -1]);
  });

  it("a short IRQ info answer is a library error", () => {
    assert.throws(() => decodeIrqInfo(0, new Uint8Array(15)), VfioError);
    assert.throws(() => decodeIrqInfo(5, irqInfoBytes(0, 0)), VfioError);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe("the holder of a busy node", () => {
  it("is found by scanning /proc/<pid>/fd, with its command name", () => {
    link("/proc/100/fd/0", "/dev/null");
    link("/proc/100/fd/7", "/dev/vfio/3");
    file("/proc/100/comm", "deno\n");
    link("/proc/200/fd/3", "/dev/vfio/devices/vfio0");
    file("/proc/200/comm", "bun\n");
    link("/proc/300/fd/9", "/dev/vfio/3");
    tree.dir("/proc/400"); // a process whose fds cannot be read
    file("/proc/self/fd/1", ""); // not a pid
    const proc = join(root, "proc");
    assert.deepEqual(nodeHolders("/dev/vfio/3", { proc }), [{ pid: 100, name: "deno" }, { pid: 300, name: "?" }]);
    assert.deepEqual(nodeHolders("/dev/vfio/3", { proc, exceptPid: 100 }), [{ pid: 300, name: "?" }]);
    assert.deepEqual(nodeHolders("/dev/vfio/devices/vfio0", { proc }), [{ pid: 200, name: "bun" }]);
    assert.deepEqual(nodeHolders("/dev/vfio/4", { proc }), []);
    assert.deepEqual(nodeHolders("/dev/vfio/3", { proc: join(root, "no-proc") }), []);
  });

  it("is named in the DeviceBusyError", () => {
    const e = new DeviceBusyError("/dev/vfio/3", "IOMMU group 3", [{ pid: 100, name: "deno" }]);
    assert.match(e.message, /IOMMU group 3 is already open: \/dev\/vfio\/3 is held by pid 100 \(deno\)/);
    assert.match(e.message, /stop pid 100/);
    assert.ok(e instanceof VfioError);
    assert.match(new DeviceBusyError("/dev/vfio/3", "x", []).message, /another process/);
  });
});
